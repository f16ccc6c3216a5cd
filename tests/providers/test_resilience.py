"""The retry and fallback policy: backoff bounds, what is retried and fallen back from, and the rule
that nothing is retried once any event went out (mostly with tiny scripted models, plus a few calls
through the fake provider)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.provider import Reply
from tests.providers.conftest import model_call, provider_settings
from toolwire.server import errors
from toolwire.server.conversation import ModelCall
from toolwire.server.events import StopReason, TextDelta, TurnEnd, Usage
from toolwire.server.models.registry import ModelRegistry
from toolwire.server.models.remote import RemoteProvider
from toolwire.server.models.resilience import ResilientModel, RetryPolicy
from toolwire.server.status import status_for

FIXTURES = Path(__file__).parent / "fixtures"
ANSWER = [TextDelta("Hello"), TextDelta(", world."), TurnEnd(StopReason.STOP, "stop"), Usage(3, 4)]
POLICY = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.5, max_backoff_seconds=8.0)


class ScriptedModel:
    """A model whose every call plays `script`: events are yielded, an exception is raised."""

    def __init__(self, model_id: str, script: Sequence[Any]) -> None:
        self.model_id = model_id
        self.script = list(script)
        self.calls = 0
        self.finished = 0
        self.failed = asyncio.Event()

    async def stream(self, call: ModelCall) -> AsyncGenerator[Any, None]:
        self.calls += 1
        try:
            for item in self.script:
                if isinstance(item, BaseException):
                    self.failed.set()
                    raise item
                yield item
        finally:
            self.finished += 1


def chain(*models: ScriptedModel, policy: RetryPolicy = POLICY) -> tuple[ResilientModel, list[float]]:
    """A ResilientModel over `models` whose sleeps are recorded (not slept) and whose jitter is 1."""
    sleeps: list[float] = []

    async def recording_sleep(delay: float) -> None:
        sleeps.append(delay)

    return ResilientModel("alias", models, policy, sleep=recording_sleep, jitter=lambda: 1.0), sleeps


async def collect(model) -> tuple[list[Any], BaseException | None]:
    events: list[Any] = []
    try:
        async with contextlib.aclosing(model.stream(model_call())) as stream:
            async for event in stream:
                events.append(event)
    except errors.ToolwireError as error:
        return events, error
    return events, None


# --- RetryPolicy.backoff --------------------------------------------------------------------------


def test_backoff_bound_doubles_per_attempt_up_to_the_maximum():
    policy = RetryPolicy(max_attempts=10, initial_backoff_seconds=0.5, max_backoff_seconds=4.0)
    bounds = [policy.backoff(attempt, None, lambda: 1.0) for attempt in range(1, 7)]
    assert bounds == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_jitter_scales_the_bound():
    policy = RetryPolicy(max_attempts=10, initial_backoff_seconds=0.5, max_backoff_seconds=4.0)
    assert policy.backoff(3, None, lambda: 0.0) == 0
    assert policy.backoff(3, None, lambda: 0.25) == 0.5
    assert policy.backoff(3, None, lambda: 1.0) == 2.0


def test_backoff_retry_after_is_a_floor():
    policy = RetryPolicy(max_attempts=10, initial_backoff_seconds=0.5, max_backoff_seconds=4.0)
    assert policy.backoff(1, 3.0, lambda: 1.0) == 3.0
    assert policy.backoff(1, 3.0, lambda: 0.0) == 3.0
    assert policy.backoff(4, 1.0, lambda: 1.0) == 4.0, "a short retry_after does not cut the backoff"


def test_backoff_gives_up_on_a_long_retry_after_or_the_last_attempt():
    policy = RetryPolicy(max_attempts=3, max_retry_after_seconds=30.0)
    assert policy.backoff(1, 30.0, lambda: 1.0) == 30.0
    assert policy.backoff(1, 30.5, lambda: 1.0) is None
    assert policy.backoff(2, None, lambda: 1.0) is not None
    assert policy.backoff(3, None, lambda: 1.0) is None
    assert policy.backoff(4, 1.0, lambda: 1.0) is None


# --- retries and fallback before any output ---------------------------------------------------------

RETRYABLE = [
    errors.ProviderRateLimited("openai (HTTP 429): slow down"),
    errors.ProviderUnavailable("openai (HTTP 503): unavailable"),
    errors.ProviderTimeout("openai: no response within 5 s"),
]
NOT_RETRYABLE = [
    errors.ProviderRejectedRequest("openai (HTTP 400): messages.0: bad role"),
    errors.ProviderUnauthenticated("openai (HTTP 401): invalid key"),
]


def ids(error: BaseException) -> str:
    return type(error).__name__


@pytest.mark.parametrize("error", RETRYABLE, ids=ids)
async def test_retryable_error_is_retried_then_falls_back(error):
    first, second = ScriptedModel("a/one", [error]), ScriptedModel("b/two", ANSWER)
    model, sleeps = chain(first, second)

    events, raised = await collect(model)

    assert raised is None
    assert events == ANSWER
    assert (first.calls, second.calls) == (POLICY.max_attempts, 1)
    assert sleeps == [0.5, 1.0], "one backoff between each two attempts, none before the fallback"


@pytest.mark.parametrize("error", NOT_RETRYABLE, ids=ids)
async def test_non_retryable_error_falls_back_without_retry(error):
    first, second = ScriptedModel("a/one", [error]), ScriptedModel("b/two", ANSWER)
    model, sleeps = chain(first, second)

    events, raised = await collect(model)

    assert raised is None
    assert events == ANSWER
    assert (first.calls, second.calls) == (1, 1)
    assert sleeps == []


@pytest.mark.parametrize("error", RETRYABLE + NOT_RETRYABLE, ids=ids)
async def test_single_model_raises_its_last_error_unchanged(error):
    only = ScriptedModel("a/one", [error])
    model, _ = chain(only)

    events, raised = await collect(model)

    assert events == []
    assert raised is error
    assert type(raised) is type(error) and raised.message == error.message
    assert only.calls == (POLICY.max_attempts if error.retryable else 1)


async def test_when_the_whole_chain_fails_the_last_models_error_is_raised():
    last = errors.ProviderUnauthenticated("anthropic (HTTP 401): invalid x-api-key")
    model, _ = chain(ScriptedModel("a/one", [RETRYABLE[1]]), ScriptedModel("b/two", [last]))

    _, raised = await collect(model)

    assert raised is last


async def test_sleeps_follow_the_policy_and_honour_retry_after():
    policy = RetryPolicy(max_attempts=5, initial_backoff_seconds=0.5, max_backoff_seconds=1.5)
    plain, sleeps = chain(ScriptedModel("a/one", [RETRYABLE[1]]), policy=policy)
    await collect(plain)
    assert sleeps == [policy.backoff(attempt, None, lambda: 1.0) for attempt in range(1, 5)]
    assert sleeps == [0.5, 1.0, 1.5, 1.5]

    limited = errors.ProviderRateLimited("openai (HTTP 429): slow down", retry_after=1.2)
    floored, sleeps = chain(ScriptedModel("a/one", [limited]), policy=policy)
    await collect(floored)
    assert sleeps == [1.2, 1.2, 1.5, 1.5]


async def test_retry_after_beyond_the_limit_falls_back_at_once():
    limited = errors.ProviderRateLimited("openai (HTTP 429): daily quota", retry_after=3600)
    first, second = ScriptedModel("a/one", [limited]), ScriptedModel("b/two", ANSWER)
    model, sleeps = chain(first, second)

    events, _ = await collect(model)

    assert events == ANSWER
    assert (first.calls, sleeps) == (1, [])


# --- after output: never retried ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RETRYABLE[0], "RESOURCE_EXHAUSTED"),
        (RETRYABLE[1], "UNAVAILABLE"),
        (RETRYABLE[2], "DEADLINE_EXCEEDED"),
        (NOT_RETRYABLE[0], "INVALID_ARGUMENT"),
    ],
    ids=lambda value: value if isinstance(value, str) else ids(value),
)
async def test_provider_error_after_output_breaks_the_stream(error, code):
    first = ScriptedModel("a/one", [TextDelta("Hel"), error])
    second = ScriptedModel("b/two", ANSWER)
    model, sleeps = chain(first, second)

    events, raised = await collect(model)

    assert events == [TextDelta("Hel")]
    assert type(raised) is errors.ProviderStreamBroken
    assert raised.code == code
    assert status_for(raised) == (status_for(error)[0], raised.message)
    assert error.message in raised.message and "not retried" in raised.message
    assert (first.calls, second.calls, sleeps) == (1, 0, [])


async def test_other_toolwire_error_after_output_is_reraised_unchanged():
    failure = errors.ModelError("scripted model failed", code="ABORTED")
    first, second = ScriptedModel("a/one", [TextDelta("Hel"), failure]), ScriptedModel("b/two", ANSWER)
    model, sleeps = chain(first, second)

    events, raised = await collect(model)

    assert events == [TextDelta("Hel")]
    assert raised is failure
    assert (first.calls, second.calls, sleeps) == (1, 0, [])


async def test_fallback_streams_every_event_of_the_second_model_in_order():
    first = ScriptedModel("a/one", [errors.ProviderUnavailable("openai (HTTP 502): bad gateway")])
    second = ScriptedModel("b/two", ANSWER)
    model, _ = chain(first, second, policy=RetryPolicy(max_attempts=1))

    events, raised = await collect(model)

    assert raised is None
    assert events == ANSWER
    assert first.finished == 1 and second.finished == 1


async def test_closing_early_closes_the_inner_stream():
    inner = ScriptedModel("a/one", ANSWER)
    model, _ = chain(inner)
    stream = model.stream(model_call())

    assert await anext(stream) == ANSWER[0]
    assert inner.finished == 0
    await stream.aclose()

    assert inner.finished == 1, "the inner model's stream must be closed (its finally run) at once"


# --- through the fake provider ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "delay"),
    [({"retry-after": "2"}, 2.0), ({"retry-after-ms": "1500"}, 1.5), ({"retry-after-ms": "100"}, 0.5)],
    ids=["retry-after", "retry-after-ms", "short-retry-after-under-the-backoff"],
)
async def test_rate_limit_from_the_provider_is_retried_after_its_delay(
    fake_provider, openai_provider, headers, delay
):
    body = {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}
    answer = (FIXTURES / "openai/text-only-usage.sse").read_bytes()
    fake_provider.enqueue(Reply.json(429, body, headers), Reply(body=answer))
    model, sleeps = chain(openai_provider.resolve("test-model"))

    events, raised = await collect(model)

    assert raised is None
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).startswith("The tallest mountain")
    assert sleeps == [delay]
    assert len(fake_provider.requests) == 2


async def test_closing_early_closes_the_provider_connection(fake_provider, anthropic_provider):
    body = (FIXTURES / "anthropic/text-only.sse").read_bytes()
    fake_provider.enqueue(Reply(body=body, split_seed=2, chunk_delay=0.05))
    model, _ = chain(anthropic_provider.resolve("test-model"))

    async with contextlib.aclosing(model.stream(model_call())) as stream:
        assert await anext(stream) == TextDelta("Photosynthesis")

    await asyncio.to_thread(fake_provider.wait_closed_early)
    assert fake_provider.completed == 0
    assert len(fake_provider.requests) == 1


def keyless_registry(url: str, chain: tuple[str, ...]) -> tuple[ModelRegistry, list[RemoteProvider]]:
    providers = [
        RemoteProvider(provider_settings("openai", url, name="nokey", api_key=None, key_required=True)),
        RemoteProvider(provider_settings("anthropic", url)),
    ]
    return ModelRegistry(providers, {"smart": chain}, RetryPolicy(max_attempts=1)), providers


async def test_alias_falls_back_past_a_provider_without_a_key(fake_provider):
    fake_provider.enqueue(Reply(body=(FIXTURES / "anthropic/text-only.sse").read_bytes()))
    registry, providers = keyless_registry(fake_provider.url, ("nokey/test-model", "anthropic/test-model"))
    try:
        events, raised = await collect(registry.resolve("smart"))
    finally:
        for provider in providers:
            await provider.close()

    assert raised is None
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).startswith("Photosynthesis")
    assert [request.path for request in fake_provider.requests] == ["/v1/messages"]


@pytest.mark.parametrize(
    ("chain_ids", "expected"),
    [
        (("nokey/test-model", "anthropic/test-model"), errors.ProviderUnauthenticated),
        (("anthropic/test-model", "nokey/test-model"), errors.FailedPrecondition),
    ],
    ids=["last-rejects-the-key", "last-has-no-key"],
)
async def test_alias_whose_every_model_fails_raises_the_last_error(fake_provider, chain_ids, expected):
    body = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    fake_provider.enqueue(Reply.json(401, body))
    registry, providers = keyless_registry(fake_provider.url, chain_ids)
    try:
        _, raised = await collect(registry.resolve("smart"))
    finally:
        for provider in providers:
            await provider.close()

    assert type(raised) is expected
    if expected is errors.FailedPrecondition:
        assert "OPENAI_API_KEY" in raised.message
    else:
        assert "invalid x-api-key" in raised.message
    assert len(fake_provider.requests) == 1


async def test_cancel_during_backoff_ends_promptly():
    failing = ScriptedModel("a/one", [errors.ProviderUnavailable("openai (HTTP 503): unavailable")])
    policy = RetryPolicy(max_attempts=3, initial_backoff_seconds=10.0, max_backoff_seconds=10.0)
    model = ResilientModel("alias", [failing], policy, jitter=lambda: 1.0)  # the real asyncio.sleep
    consumer = asyncio.create_task(collect(model))
    await asyncio.wait_for(failing.failed.wait(), 5)
    await asyncio.sleep(0.05)  # into the 10 s backoff

    started = time.monotonic()
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer

    assert time.monotonic() - started < 2.0
    assert failing.calls == 1 and failing.finished == 1

"""Layer 2: provider faults through the real SDKs against the fake provider: HTTP errors, key
redaction, resets, stalls, malformed and cut streams, in-stream errors and client cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from tests.fakes.provider import Reply
from tests.providers.conftest import ANTHROPIC_KEY, OPENAI_KEY, model_call, provider_settings
from toolwire.server import errors
from toolwire.server.events import TextDelta, Usage
from toolwire.server.models.remote import RemoteProvider
from toolwire.server.models.resilience import ResilientModel, RetryPolicy
from toolwire.server.status import status_for, trailing_metadata_for

FIXTURES = Path(__file__).parent / "fixtures"
BODIES = {
    "openai": (FIXTURES / "openai/text-only-usage.sse").read_bytes(),
    "anthropic": (FIXTURES / "anthropic/text-only.sse").read_bytes(),
}
TEXTS = {
    "openai": "The tallest mountain in Japan is Mount Fuji, at 3,776 metres.",
    "anthropic": "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
}
FIRST_TEXT = {"openai": b"The tallest", "anthropic": b"Photosynthesis"}
KEYS = {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY}
PLAIN_KEY = "Zq7wN3pLx8Rt2VbK9mYc4HsD6fGj1AeU"
"""A key of a compatible server that does not look like one (32 letters and digits, no prefix)."""


@pytest.fixture(params=["openai", "anthropic"])
def wire(request) -> str:
    return request.param


@pytest.fixture
def provider(wire, request) -> RemoteProvider:
    """The conftest's provider fixture for `wire` (closed by it)."""
    return request.getfixturevalue(f"{wire}_provider")


def error_body(wire: str, error_type: str, message: str) -> dict[str, Any]:
    """An HTTP error body in the provider's own shape."""
    if wire == "openai":
        return {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return {"type": "error", "error": {"type": error_type, "message": message}}


def before_first_text(wire: str) -> int:
    """A byte offset inside the event that carries the first text (so no text arrives before it)."""
    return BODIES[wire].index(FIRST_TEXT[wire])


def after_first_text(wire: str) -> int:
    """A byte offset just after the whole event that carries the first text."""
    body = BODIES[wire]
    return body.index(b"\n\n", body.index(FIRST_TEXT[wire])) + 2


async def collect(stream) -> tuple[list[Any], errors.ToolwireError | None]:
    """Every event of a model stream, and the domain error that ended it (None when it ended well)."""
    events: list[Any] = []
    async with contextlib.aclosing(stream):
        try:
            async for event in stream:
                events.append(event)
        except errors.ToolwireError as error:
            return events, error
    return events, None


def text(events: list[Any]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


async def stream_once(wire: str, url: str, **settings: Any) -> tuple[list[Any], errors.ToolwireError | None]:
    """One call through a provider configured with `settings` changed (closed after)."""
    provider = RemoteProvider(provider_settings(wire, url, **settings))
    try:
        return await collect(provider.resolve("test-model").stream(model_call()))
    finally:
        await provider.close()


def resilient(model, sleeps: list[float], **policy: Any) -> ResilientModel:
    async def recording_sleep(delay: float) -> None:
        sleeps.append(delay)

    return ResilientModel("test", [model], RetryPolicy(**policy), sleep=recording_sleep, jitter=lambda: 1.0)


# --- HTTP errors --------------------------------------------------------------------------------

HTTP_ERRORS = [
    (400, "invalid_request_error", errors.ProviderRejectedRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (401, "authentication_error", errors.ProviderUnauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (403, "permission_error", errors.ProviderPermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (404, "not_found_error", errors.ProviderModelNotFound, grpc.StatusCode.NOT_FOUND),
    (429, "rate_limit_error", errors.ProviderRateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (429, "insufficient_quota", errors.ProviderQuotaExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),  # OpenAI's
    (500, "api_error", errors.ProviderUnavailable, grpc.StatusCode.UNAVAILABLE),
    (502, "api_error", errors.ProviderUnavailable, grpc.StatusCode.UNAVAILABLE),
    (503, "api_error", errors.ProviderUnavailable, grpc.StatusCode.UNAVAILABLE),
    (529, "overloaded_error", errors.ProviderUnavailable, grpc.StatusCode.UNAVAILABLE),  # Anthropic's
    (504, "timeout_error", errors.ProviderTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (408, "timeout_error", errors.ProviderTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
]


@pytest.mark.parametrize(
    ("status", "error_type", "error_class", "code"),
    HTTP_ERRORS,
    ids=[f"{row[0]}-{row[1]}" for row in HTTP_ERRORS],
)
async def test_http_error_maps_to_domain_error_and_code(
    wire, provider, fake_provider, status, error_type, error_class, code
):
    provider_message = f"messages.0: bad role ({status})"
    fake_provider.enqueue(Reply.json(status, error_body(wire, error_type, provider_message)))

    events, error = await collect(provider.resolve("test-model").stream(model_call()))

    assert events == []
    assert type(error) is error_class
    assert status_for(error) == (code, error.message)
    assert provider_message in error.message
    assert f"HTTP {status}" in error.message
    assert len(fake_provider.requests) == 1, "the SDK must not retry on its own"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [({"retry-after": "2"}, 2.0), ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5)],
    ids=["retry-after", "retry-after-ms"],
)
async def test_rate_limit_carries_the_providers_retry_after(wire, provider, fake_provider, headers, seconds):
    body = error_body(wire, "rate_limit_error", "Rate limit reached")
    fake_provider.enqueue(Reply.json(429, body, headers))

    _, error = await collect(provider.resolve("test-model").stream(model_call()))

    assert type(error) is errors.ProviderRateLimited
    assert status_for(error)[0] is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.retry_after == seconds
    assert f"retry after {seconds:g} s" in error.message


# --- no key in anything we produce ----------------------------------------------------------------


def assert_no_key(error: errors.ToolwireError, key: str) -> None:
    code, message = status_for(error)
    metadata = b"".join(value for _, value in trailing_metadata_for(error, code, message))
    for where, value in [("message", message), ("str", str(error)), ("repr", repr(error))]:
        assert key not in value, (
            f"the configured API key leaks through the error's {where} (it must be redacted): {value!r}"
        )
        assert not re.search(r"sk-\w", value), f"a key-shaped token leaks through the {where}: {value!r}"
    assert key.encode() not in metadata and b"sk-" not in metadata


@pytest.mark.parametrize("key", ["configured", "plain"], ids=["sk-key", "key-not-shaped-like-one"])
async def test_401_echoing_the_key_is_redacted(wire, fake_provider, key):
    api_key = KEYS[wire] if key == "configured" else PLAIN_KEY
    echo = (
        f"Incorrect API key provided: {api_key}. You can find your API key at "
        "https://platform.openai.com/account/api-keys. (masked: sk-test-****cdef)"
    )
    fake_provider.enqueue(Reply.json(401, error_body(wire, "authentication_error", echo)))

    _, error = await stream_once(wire, fake_provider.url, api_key=api_key)

    assert type(error) is errors.ProviderUnauthenticated
    assert "Incorrect API key provided" in error.message
    assert_no_key(error, api_key)


@pytest.mark.parametrize("key", ["configured", "plain"], ids=["sk-key", "key-not-shaped-like-one"])
async def test_in_stream_error_echoing_the_key_is_redacted(wire, fake_provider, key):
    # A compatible server's key need not look like one: only the configured secret itself can be
    # redacted then, so the adapter must pass it to the in-stream error mapping too.
    api_key = KEYS[wire] if key == "configured" else PLAIN_KEY
    message = f"invalid api key {api_key} for this model"
    if wire == "openai":
        body = f'data: {{"error": {{"message": "{message}", "type": "server_error"}}}}\n\n'
    else:
        event = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        body = f"event: error\ndata: {json.dumps(event)}\n\n"
    fake_provider.enqueue(Reply(body=body.encode()))

    _, error = await stream_once(wire, fake_provider.url, api_key=api_key)

    assert type(error) is errors.ProviderUnavailable
    assert "for this model" in error.message
    assert_no_key(error, api_key)


def test_trailing_metadata_has_retry_info_for_a_rate_limit_only():
    limited = errors.ProviderRateLimited("openai (HTTP 429): slow down; retry after 2 s", retry_after=2)
    code, message = status_for(limited)

    (name, value), *rest = trailing_metadata_for(limited, code, message)

    assert rest == []
    assert name == "grpc-status-details-bin"
    status = status_pb2.Status.FromString(value)
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert status.message == message
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.ToTimedelta().total_seconds() == 2

    rejected = errors.ProviderRejectedRequest("openai (HTTP 400): messages.0: bad role")
    assert trailing_metadata_for(rejected, *status_for(rejected)) == ()


# --- broken, stalled and malformed streams ------------------------------------------------------


async def test_connection_reset_mid_stream_is_unavailable(wire, provider, fake_provider):
    fake_provider.enqueue(Reply(body=BODIES[wire], reset_after=after_first_text(wire)))

    events, error = await collect(provider.resolve("test-model").stream(model_call()))

    assert text(events) == FIRST_TEXT[wire].decode()
    assert type(error) is errors.ProviderUnavailable
    assert status_for(error)[0] is grpc.StatusCode.UNAVAILABLE


async def test_reset_before_output_is_retried(wire, provider, fake_provider):
    body = BODIES[wire]
    fake_provider.enqueue(
        Reply(body=body, reset_after=before_first_text(wire)), Reply(body=body, split_seed=3)
    )
    sleeps: list[float] = []

    events, error = await collect(resilient(provider.resolve("test-model"), sleeps).stream(model_call()))

    assert error is None
    assert text(events) == TEXTS[wire]
    assert len(fake_provider.requests) == 2
    assert sleeps == [RetryPolicy().initial_backoff_seconds]


async def test_reset_after_output_breaks_the_stream_without_retry(wire, provider, fake_provider):
    body = BODIES[wire]
    fake_provider.enqueue(Reply(body=body, reset_after=after_first_text(wire)), Reply(body=body))
    sleeps: list[float] = []

    events, error = await collect(resilient(provider.resolve("test-model"), sleeps).stream(model_call()))

    assert text(events) == FIRST_TEXT[wire].decode()
    assert type(error) is errors.ProviderStreamBroken
    assert error.code == "UNAVAILABLE"
    assert status_for(error)[0] is grpc.StatusCode.UNAVAILABLE
    assert "not retried" in error.message
    assert len(fake_provider.requests) == 1
    assert sleeps == []


async def test_stall_times_out_and_closes_the_connection(wire, fake_provider):
    fake_provider.enqueue(Reply(body=BODIES[wire], stall_after=after_first_text(wire)))

    events, error = await stream_once(wire, fake_provider.url, timeout_seconds=0.3)

    assert text(events) == FIRST_TEXT[wire].decode()
    assert type(error) is errors.ProviderTimeout
    assert status_for(error)[0] is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "0.3 s" in error.message
    await asyncio.to_thread(fake_provider.wait_closed_early)


MALFORMED = {
    "openai": b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\ndata: {"choices": [oops\n\n',
    "anthropic": (
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":3}}}\n\n'
        b"event: content_block_delta\ndata: not json at all\n\n"
    ),
}


async def test_malformed_sse_data_is_unavailable(wire, provider, fake_provider):
    fake_provider.enqueue(Reply(body=MALFORMED[wire]))

    _, error = await collect(provider.resolve("test-model").stream(model_call()))

    assert type(error) is errors.ProviderUnavailable
    assert "not valid JSON" in error.message


OPENAI_ERROR_AFTER_TEXT = BODIES["openai"][: after_first_text("openai")] + (
    b'data: {"error": {"message": "upstream overloaded", "type": "server_error"}}\n\n'
)
ERROR_AFTER_TEXT = {
    "openai": (OPENAI_ERROR_AFTER_TEXT, "The tallest", "upstream overloaded"),
    "anthropic": (
        (FIXTURES / "anthropic/overloaded-error-after-text.sse").read_bytes(),
        "The three primary colours of light are",
        "Overloaded",
    ),
}


async def test_error_event_after_text_breaks_the_stream(wire, provider, fake_provider):
    body, expected_text, provider_message = ERROR_AFTER_TEXT[wire]
    fake_provider.enqueue(Reply(body=body, split_seed=11), Reply(body=BODIES[wire]))
    sleeps: list[float] = []

    events, error = await collect(resilient(provider.resolve("test-model"), sleeps).stream(model_call()))

    assert text(events) == expected_text
    assert all(isinstance(event, TextDelta) for event in events)
    assert type(error) is errors.ProviderStreamBroken
    assert error.code == "UNAVAILABLE"
    assert provider_message in error.message
    assert len(fake_provider.requests) == 1
    assert sleeps == []


QUOTA_SPENT = {
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "type": "insufficient_quota",
    "param": None,
    "code": "insufficient_quota",
}


@pytest.mark.parametrize("where", ["HTTP 429", "error event"])
async def test_a_spent_quota_is_resource_exhausted_and_not_retried(wire, provider, fake_provider, where):
    """Unlike a rate limit (retried), waiting does not refill an account's quota."""
    if where == "HTTP 429":
        reply = Reply.json(429, {"error": QUOTA_SPENT})
    elif wire == "openai":  # as an OpenAI-compatible server sends it inside a stream, before any output
        reply = Reply(body=b"data: " + json.dumps({"error": QUOTA_SPENT}).encode() + b"\n\n")
    else:
        event = json.dumps({"type": "error", "error": QUOTA_SPENT}).encode()
        reply = Reply(body=b"event: error\ndata: " + event + b"\n\n")
    fake_provider.enqueue(reply, Reply(body=BODIES[wire]))
    sleeps: list[float] = []

    events, error = await collect(resilient(provider.resolve("test-model"), sleeps).stream(model_call()))

    assert events == []
    assert type(error) is errors.ProviderQuotaExceeded
    assert status_for(error) == (grpc.StatusCode.RESOURCE_EXHAUSTED, error.message)
    assert "exceeded your current quota" in error.message
    assert len(fake_provider.requests) == 1 and sleeps == []


def cut_short(wire: str) -> bytes:
    """The text stream without its stop reason and end (Anthropic: no message_delta/message_stop;
    OpenAI: no finish_reason chunk, no usage, no [DONE])."""
    body = BODIES[wire]
    marker = b"event: message_delta" if wire == "anthropic" else b'"finish_reason":"stop"'
    return body[: body.rindex(b"\n\n", 0, body.index(marker)) + 2]


async def test_stream_ending_early_is_unavailable(wire, provider, fake_provider):
    fake_provider.enqueue(Reply(body=cut_short(wire)))

    events, error = await collect(provider.resolve("test-model").stream(model_call()))

    assert text(events) == TEXTS[wire]
    assert type(error) is errors.ProviderUnavailable
    assert status_for(error)[0] is grpc.StatusCode.UNAVAILABLE
    assert "ended" in error.message


# --- cancellation, request headers, usage -------------------------------------------------------


def long_stream(wire: str, chunks: int = 200) -> bytes:
    words = [f"word{n} " for n in range(chunks)]
    if wire == "openai":
        events = [
            {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]} for word in words
        ]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        return (
            b"".join(b"data: %s\n\n" % json.dumps(event).encode() for event in events) + b"data: [DONE]\n\n"
        )
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
            for w in words
        ),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": chunks}},
        {"type": "message_stop"},
    ]
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), json.dumps(e).encode()) for e in events)


async def test_closing_the_stream_early_closes_the_connection(wire, provider, fake_provider):
    fake_provider.enqueue(Reply(body=long_stream(wire), split_seed=5, chunk_delay=0.02))
    stream = provider.resolve("test-model").stream(model_call())

    first = [await anext(stream), await anext(stream)]
    await stream.aclose()

    assert first == [TextDelta("word0 "), TextDelta("word1 ")]
    await asyncio.to_thread(fake_provider.wait_closed_early)
    assert fake_provider.completed == 0


async def test_request_asks_for_an_uncompressed_body(wire, provider, fake_provider):
    fake_provider.enqueue(Reply(body=BODIES[wire]))

    _, error = await collect(provider.resolve("test-model").stream(model_call()))

    assert error is None
    assert fake_provider.requests[0].headers["accept-encoding"] == "identity"


WITHOUT_USAGE = re.sub(rb'data: \{[^\n]*"choices":\[\],"usage"[^\n]*\n\n', b"", BODIES["openai"])


@pytest.mark.parametrize(
    ("body", "usage"),
    [(BODIES["openai"], Usage(19, 16)), (WITHOUT_USAGE, None)],
    ids=["usage-chunk-with-empty-choices", "no-usage"],
)
async def test_openai_usage_chunk_or_none(fake_provider, openai_provider, body, usage):
    assert body.endswith(b"data: [DONE]\n\n") and (usage is not None or b'"usage"' not in body)
    fake_provider.enqueue(Reply(body=body))

    events, error = await collect(openai_provider.resolve("test-model").stream(model_call()))

    assert error is None
    assert text(events) == TEXTS["openai"]
    assert [event for event in events if isinstance(event, Usage)] == ([usage] if usage else [])

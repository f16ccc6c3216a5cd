"""Retries with backoff and fallback along a chain of models, only while nothing has been yielded.

A `ResilientModel` is itself a `Model`. It starts a call on the first model of its chain; a
retryable failure (429, 5xx, overload, connection error, timeout) is retried after a jittered
exponential backoff or the provider's `Retry-After`; a failure that retrying will not fix, or the
last retry, moves on to the next model of the chain. All of this happens only while the failed call
has yielded nothing: once any event has gone to the loop (and so perhaps to the client), a failure
ends the chat with `ProviderStreamBroken`, never a silent retry that could duplicate text or replay
a tool call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from toolwire.server import errors
from toolwire.server.conversation import ModelCall
from toolwire.server.events import ModelEvent
from toolwire.server.models.base import Model
from toolwire.server.status import status_for

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """How often and how patiently one model call is retried."""

    max_attempts: int = 3
    """Attempts per model of the chain, the first one included."""
    initial_backoff_seconds: float = 0.5
    """The upper bound of the first backoff; each later bound doubles."""
    max_backoff_seconds: float = 8.0
    """No backoff bound grows past this."""
    max_retry_after_seconds: float = 30.0
    """A provider asking to wait longer than this is not waited for: fall back, or fail with its delay."""

    def backoff(self, attempt: int, retry_after: float | None, jitter: Callable[[], float]) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None when waiting is pointless.

        Full jitter (a uniform draw below the exponential bound) spreads out clients that failed
        together; a provider's `Retry-After` is honoured as a floor.
        """
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None and retry_after > self.max_retry_after_seconds:
            return None
        bound = min(self.max_backoff_seconds, self.initial_backoff_seconds * 2.0 ** (attempt - 1))
        delay: float = bound * jitter()
        return max(delay, retry_after) if retry_after is not None else delay


Sleep = Callable[[float], Awaitable[None]]


class ResilientModel:
    """A chain of models tried in order, each with retries (a chain of one just retries)."""

    def __init__(
        self,
        model_id: str,
        chain: Sequence[Model],
        policy: RetryPolicy,
        *,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not chain:
            raise ValueError("a ResilientModel needs at least one model")
        self._model_id = model_id
        self._chain = tuple(chain)
        self._policy = policy
        self._sleep = sleep
        self._jitter = jitter

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def chain(self) -> tuple[Model, ...]:
        """The models tried, in order."""
        return self._chain

    async def stream(self, call: ModelCall) -> AsyncGenerator[ModelEvent, None]:
        last_error: errors.ToolwireError | None = None
        for position, model in enumerate(self._chain, start=1):
            attempt = 0
            while True:
                attempt += 1
                yielded = False
                try:
                    async with contextlib.aclosing(model.stream(call)) as events:
                        async for event in events:
                            yielded = True
                            yield event
                    return
                except errors.ToolwireError as error:
                    if yielded and isinstance(error, errors.ProviderError):
                        raise _broken(error) from None
                    if yielded:
                        raise
                    last_error = error
                    delay = self._retry_delay(error, attempt)
                    if delay is None:
                        break
                    log.warning(
                        "model %s failed before any output (attempt %d): %s; retrying in %.2f s",
                        model.model_id, attempt, error.message, delay,
                    )  # fmt: skip
                    await self._sleep(delay)
            if position < len(self._chain):
                log.warning("model %s failed: %s; falling back to %s", model.model_id, last_error,
                            self._chain[position].model_id)  # fmt: skip
        assert last_error is not None
        raise last_error

    def _retry_delay(self, error: errors.ToolwireError, attempt: int) -> float | None:
        if not isinstance(error, errors.ProviderError) or not error.retryable:
            return None
        return self._policy.backoff(attempt, error.retry_after, self._jitter)


def _broken(error: errors.ToolwireError) -> errors.ProviderStreamBroken:
    code, _ = status_for(error)
    return errors.ProviderStreamBroken(
        f"{error.message} (the stream broke after part of the answer was sent; not retried, "
        "so that no text is repeated and no tool call runs twice)",
        code=code.name,
    )

"""What the HTTP adapters share: reading an SSE body as JSON payloads, and turning the SDKs'
exceptions into domain errors. Both SDKs name their exceptions alike; which module's classes to
catch is passed in, so this file imports no SDK."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2

from toolwire.server.models import provider_errors
from toolwire.server.models.sse import SSEDecoder

STREAM_HEADERS = {"Accept-Encoding": "identity"}
"""Ask for an uncompressed body: a gzip-compressed event stream can hold chunks back until the end."""


@dataclass(slots=True, frozen=True)
class SdkErrors:
    """One SDK's exception classes (`openai.APIStatusError`, ... or `anthropic.APIStatusError`, ...)."""

    status: type[Exception]
    timeout: type[Exception]
    connection: type[Exception]


async def sse_payloads(body: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """The `data` of each event of an SSE body, as the bytes arrive (split anywhere)."""
    decoder = SSEDecoder()
    async for raw in body:
        for event in decoder.feed(raw):
            yield event.data
    for event in decoder.close():
        yield event.data


@contextlib.contextmanager
def provider_failures(
    sdk: SdkErrors, *, provider: str, secrets: Iterable[str], timeout: object
) -> Iterator[None]:
    """Turns the SDK's and the transport's exceptions raised inside into `ProviderError`s."""
    try:
        yield
    except sdk.status as error:
        response: Any = getattr(error, "response", None)
        raise provider_errors.error_for_status(
            int(getattr(error, "status_code", 500)),
            provider_message(getattr(error, "body", None), str(getattr(error, "message", ""))),
            provider=provider,
            retry_after=provider_errors.retry_after_seconds(response.headers)
            if response is not None
            else None,
            secrets=secrets,
        ) from None
    except (sdk.timeout, httpx2.TimeoutException):
        raise provider_errors.error_for_timeout(provider=provider, seconds=read_timeout(timeout)) from None
    except (sdk.connection, httpx2.TransportError) as error:
        raise provider_errors.error_for_connection(provider=provider, what=type(error).__name__) from None


def provider_message(body: object, fallback: str) -> str:
    """The provider's own message from an error body: `{"error": {"message": ...}}` (both APIs)."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return fallback


def read_timeout(timeout: object) -> float | None:
    """The read timeout of an SDK client's `timeout` setting."""
    if isinstance(timeout, httpx2.Timeout):
        return timeout.read
    return float(timeout) if isinstance(timeout, int | float) else None


def count(value: object) -> int | None:
    """A token count, or None when absent or not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def string(value: object) -> str | None:
    """The value if it is a string (JSON null and other types count as missing)."""
    return value if isinstance(value, str) else None

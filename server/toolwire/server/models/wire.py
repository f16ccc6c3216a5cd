"""What the HTTP adapters share: reading an SSE body's payloads, and reading optional wire fields."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from toolwire.server.models.sse import SSEDecoder


async def sse_payloads(body: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """The `data` of each event of an SSE body, as the bytes arrive (split anywhere)."""
    decoder = SSEDecoder()
    async for raw in body:
        for event in decoder.feed(raw):
            yield event.data
    for event in decoder.close():
        yield event.data


def count(value: object) -> int | None:
    """A token count, or None when absent or not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def string(value: object) -> str | None:
    """The value if it is a string (JSON null and other types count as missing)."""
    return value if isinstance(value, str) else None

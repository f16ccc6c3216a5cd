"""What the HTTP adapters share: reading an SSE body's payloads, parsing them, and reading optional
wire fields."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import jiter

from toolwire.server.models.sse import SSEDecoder


async def sse_payloads(body: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """The `data` of each event of an SSE body, as the bytes arrive (split anywhere)."""
    decoder = SSEDecoder()
    async for raw in body:
        for payload in decoder.feed(raw):
            yield payload
    for payload in decoder.close():
        yield payload


def parse_payload(data: bytes) -> Any:
    """An SSE payload's JSON; raises ValueError when it is not JSON.

    jiter keeps a process-wide cache of the strings it made (16,384 at most), by default of every
    string. Here only object keys are cached: the values are the model's output and the tool
    arguments, which would otherwise stay in the process after their chat has ended, and fill a cache
    that soaks and memory checks would see grow with the number of chats until it is full. The keys
    are the same in every chunk; keys only costs ~0.2-0.5 µs more per chunk than all strings, since
    a stream's repeated values (its id, model, event types) are made again each time.
    """
    return jiter.from_json(data, cache_mode="keys")


def count(value: object) -> int | None:
    """A token count, or None when absent or not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def string(value: object) -> str | None:
    """The value if it is a string (JSON null and other types count as missing)."""
    return value if isinstance(value, str) else None

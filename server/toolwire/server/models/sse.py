"""A Server-Sent Events decoder for provider streams: bytes split anywhere in, events out.

Both providers stream `text/event-stream`. The SDKs decode it into typed objects at a high cost per
chunk; we read the raw body and decode it here, then parse each payload with jiter. The decoder is
lenient where real servers are sloppy: CRLF line ends, leading spaces before a field name, comments,
and a last event without its closing blank line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class ServerSentEvent:
    """One event of the stream."""

    event: str
    """The `event:` field, or "" when the server sent none (OpenAI sends none)."""
    data: bytes
    """The `data:` lines joined with newlines, still encoded (JSON parsers take bytes)."""


class SSEDecoder:
    """Incremental decoder: `feed` each chunk as it arrives, `close` at the end of the body."""

    def __init__(self) -> None:
        self._partial = b""
        self._event = ""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events completed by this chunk (often none or one)."""
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        events: list[ServerSentEvent] = []
        for line in lines:
            if line[:6] == b"data: " and line[-1:] != b"\r":  # the common line, without a call
                self._data.append(line[6:])
                continue
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[ServerSentEvent]:
        """The last event, when the body ended without the blank line that should close it."""
        events = self.feed(b"\n") if self._partial else []
        event = self._line(b"")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: bytes) -> ServerSentEvent | None:
        line = line.rstrip(b"\r").lstrip()
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None  # a comment, e.g. a keep-alive
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        return None  # id: and retry: are not used by model APIs

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(self._event, b"\n".join(self._data))
        self._event = ""
        self._data = []
        return event

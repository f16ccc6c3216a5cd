"""A Server-Sent Events decoder for provider streams: bytes split anywhere in, events out.

Both providers stream `text/event-stream`. The SDKs decode it into typed objects at a high cost per
chunk; we read the raw body and decode it here, then parse each payload with jiter. The decoder is
lenient where real servers are sloppy: CRLF line ends, leading spaces before a field name, comments,
and a last event without its closing blank line.
"""

from __future__ import annotations


class SSEDecoder:
    """Incremental decoder: `feed` each chunk as it arrives, `close` at the end of the body.

    It gives each event's data, not the event: both model APIs name an event's kind inside its JSON
    (`type`), so the `event:` field is read past, like `id:` and `retry:`. This is the first step of
    every relayed chunk, so the common lines (`data: ...` and the blank line ending an event) are
    handled inline, without a call or an object per event.
    """

    def __init__(self) -> None:
        self._partial = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """The data of each event this chunk completes (often none or one): its `data:` lines joined
        with newlines, still encoded (JSON parsers take bytes)."""
        lines = (self._partial + chunk if self._partial else chunk).split(b"\n")
        self._partial = lines.pop()
        payloads: list[bytes] = []
        data = self._data
        for line in lines:
            if line[:6] == b"data: " and line[-1:] != b"\r":  # the common line, without a call
                data.append(line[6:])
            elif not line:
                if data:
                    payloads.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            else:
                self._line(line, payloads)
        return payloads

    def close(self) -> list[bytes]:
        """The last event's data, when the body ended without the blank line that should close it."""
        payloads = self.feed(b"\n") if self._partial else []
        self._line(b"", payloads)
        return payloads

    def _line(self, line: bytes, payloads: list[bytes]) -> None:
        """Any line but the two common ones: CRLF ends, leading spaces, comments, other fields."""
        line = line.rstrip(b"\r").lstrip()
        data = self._data
        if not line:
            if data:
                payloads.append(b"\n".join(data))
                data.clear()
            return
        if line.startswith(b":"):
            return  # a comment, e.g. a keep-alive
        name, _, value = line.partition(b":")
        if name == b"data":
            data.append(value[1:] if value.startswith(b" ") else value)
        # event:, id: and retry: are not used by model APIs

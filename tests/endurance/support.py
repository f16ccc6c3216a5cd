"""What the endurance tests and the soak share: OpenAI-style SSE bodies, a fake provider that counts
the bytes it managed to write, and a process's resident memory and open descriptors from /proc."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

from tests.fakes.provider import FakeProvider, Reply


def sse(*chunks: dict[str, Any]) -> bytes:
    """An OpenAI Chat Completions stream of `chunks`, then `[DONE]`."""
    lines = [b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n" for chunk in chunks]
    return b"".join(lines) + b"data: [DONE]\n\n"


def text_chunk(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def finish_chunk(reason: str = "stop") -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}


def tool_call_chunk(index: int, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    call = {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    return {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}


def usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    return {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


def text_reply(*texts: str, **reply: Any) -> Reply:
    """A streamed text answer, one chunk per text."""
    return Reply(body=sse(*(text_chunk(text) for text in texts), finish_chunk(), usage_chunk(10, 5)), **reply)


class CountingFakeProvider(FakeProvider):
    """A `FakeProvider` that knows how many response bytes its connections have handed to the kernel
    (written minus what still waits in the transports' own buffers): when the server stops reading,
    that count stops growing. `send_buffer_bytes` shrinks each connection's socket send buffer and
    transport buffer limit, so that little hides between the fake and the server."""

    def __init__(self, send_buffer_bytes: int | None = None) -> None:
        super().__init__()
        self._send_buffer_bytes = send_buffer_bytes
        self._counting: list[_CountingWriter] = []

    @property
    def bytes_written(self) -> int:
        """Response bytes handed to the kernel so far, over every connection (read in the fake's loop)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("fake provider is not running")

        async def count() -> int:
            return sum(writer.sent() for writer in self._counting)

        return asyncio.run_coroutine_threadsafe(count(), loop).result(5)

    async def _send(self, reply: Reply, writer: Any, client_gone: Any) -> Any:  # type: ignore[override]
        if self._send_buffer_bytes is not None:
            sock = writer.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer_bytes)
            writer.transport.set_write_buffer_limits(high=self._send_buffer_bytes)
        counting = _CountingWriter(writer)
        self._counting.append(counting)
        return await super()._send(reply, counting, client_gone)


class _CountingWriter:
    """A StreamWriter proxy that counts what was written to it."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer
        self._written = 0

    def sent(self) -> int:
        """Bytes written and no longer in the transport's buffer (all of them once it is closed)."""
        return self._written - self._writer.transport.get_write_buffer_size()

    def write(self, data: bytes) -> None:
        self._written += len(data)
        self._writer.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


def rss_kib(pid: int) -> int:
    """The resident set size of process `pid`, in KiB (VmRSS of /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    """How many file descriptors process `pid` has open."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def socket_fds(pid: int) -> int:
    """How many of process `pid`'s descriptors are sockets."""
    count = 0
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if entry.readlink().name.startswith("socket:"):
                count += 1
        except FileNotFoundError:  # closed while we looked
            continue
    return count

"""A fake LLM provider: a scripted HTTP/1.1 server on 127.0.0.1 that the openai and anthropic SDKs talk to.

Built on `asyncio.start_server` so that every byte on the wire is ours: a reply can be split into random
pieces (also inside UTF-8 characters and lines), slowed down, cut off with a reset or stalled. The server
runs its own event loop in a daemon thread, so it serves in-process async tests and separate processes alike.
Each connection carries one request and one reply (`Connection: close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import http
import json
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_STOP_TIMEOUT = 5.0


@dataclass
class Reply:
    """One scripted HTTP response.

    `split_seed` None sends the body as one piece; otherwise it is cut into random pieces of 1..64 bytes
    (`random.Random(split_seed)`), anywhere. `chunk_delay` seconds pass between pieces. Faults: after
    `reset_after` body bytes the connection is aborted (the client gets the bytes so far, then an incomplete
    body); after `stall_after` body bytes nothing more is sent until the client leaves or the server stops.
    A fault fires even when its count is at or beyond the body length (the body is never finished then).
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/event-stream"
    split_seed: int | None = None
    chunk_delay: float = 0.0
    reset_after: int | None = None
    stall_after: int | None = None

    @classmethod
    def json(cls, status: int, payload: object, headers: dict[str, str] | None = None) -> Reply:
        """A JSON response (an error or a non-streamed result), sent with Content-Length."""
        return cls(status, json.dumps(payload).encode(), dict(headers or {}), "application/json")


@dataclass
class RecordedRequest:
    """One request the fake received. `headers` has lower-cased names and is left out of the repr."""

    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


_NO_REPLY = Reply.json(500, {"error": {"message": "fake provider: no reply queued", "type": "server_error"}})


class _Outcome(enum.Enum):
    COMPLETED = "completed"
    CLOSED_EARLY = "closed early"
    FAULT = "fault"  # our own reset or a stall ended by the server stopping


class FakeProvider:
    """Context manager: `with FakeProvider() as fake:` starts it on 127.0.0.1, port 0, and stops it after.

    Queue replies with `enqueue`; each request takes the next one, or a 500 error when none is left.
    The `wait_*` methods block the calling thread (the fake keeps serving from its own thread).
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._replies: deque[Reply] = deque()
        self._changed = threading.Condition()
        self._completed = 0
        self._closed_early = 0
        self._connections = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._port: int | None = None
        self._stopping = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __enter__(self) -> FakeProvider:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, "http://127.0.0.1:<port>"."""
        if self._port is None:
            raise RuntimeError("fake provider is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def completed(self) -> int:
        """How many responses had their whole body sent."""
        with self._changed:
            return self._completed

    @property
    def closed_early(self) -> int:
        """How many responses lost their client (closed or reset) before the whole body was sent."""
        with self._changed:
            return self._closed_early

    @property
    def connections(self) -> int:
        """How many connections clients opened."""
        with self._changed:
            return self._connections

    def start(self) -> None:
        """Starts serving in a background daemon thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("fake provider is already running")
        ready = threading.Event()
        self._startup_error = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-provider", daemon=True)
        self._thread.start()
        if not ready.wait(_STOP_TIMEOUT) or self._startup_error is not None:
            self.stop()
            raise RuntimeError("fake provider did not start") from self._startup_error

    def stop(self) -> None:
        """Closes the listener and every open connection (stalled ones too) and joins the thread."""
        thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
        if thread is None:
            return
        if loop is not None and stop_requested is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(stop_requested.set)
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"fake provider did not stop within {_STOP_TIMEOUT} s")
        self._thread = self._loop = self._stop_requested = self._port = None

    def enqueue(self, *replies: Reply) -> None:
        """Adds replies to the queue (first in, first out)."""
        with self._changed:
            self._replies.extend(replies)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:
        """Blocks until at least `count` requests have arrived; AssertionError after `timeout` seconds."""
        self._wait_until(lambda: len(self.requests) >= count, timeout, f"{count} request(s)")

    def wait_closed_early(self, count: int = 1, timeout: float = 5.0) -> None:
        """Blocks until `closed_early` reaches `count`; AssertionError after `timeout` seconds."""
        self._wait_until(lambda: self._closed_early >= count, timeout, f"{count} response(s) closed early")

    def _wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise AssertionError(
                    f"fake provider: waited {timeout} s for {what}; have {len(self.requests)} request(s), "
                    f"{self._completed} completed, {self._closed_early} closed early"
                )

    # --- the server thread -------------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve_until_stopped(ready))
        except BaseException as error:  # reported by start(); a daemon thread must not die noisily
            self._startup_error = error
            ready.set()

    async def _serve_until_stopped(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self._port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await self._stop_requested.wait()
        finally:
            self._stopping = True
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback, so the writer is known (and can be aborted by stop) before the task runs.
        self._writers.add(writer)
        with self._changed:
            self._connections += 1
        task = asyncio.get_running_loop().create_task(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_gone: asyncio.Task[None] | None = None
        try:
            request = await _read_request(reader)
            if request is None:
                return
            with self._changed:
                self.requests.append(request)
                reply = self._replies.popleft() if self._replies else _NO_REPLY
                self._changed.notify_all()
            client_gone = asyncio.ensure_future(_wait_for_eof(reader))
            outcome = await self._send(reply, writer, client_gone)
            with self._changed:
                if outcome is _Outcome.COMPLETED:
                    self._completed += 1
                elif outcome is _Outcome.CLOSED_EARLY and not self._stopping:
                    self._closed_early += 1
                self._changed.notify_all()
        except (ConnectionError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a malformed request or a client gone before its request was read: just hang up
        finally:
            if client_gone is not None:
                client_gone.cancel()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._writers.discard(writer)

    async def _send(
        self, reply: Reply, writer: asyncio.StreamWriter, client_gone: asyncio.Task[None]
    ) -> _Outcome:
        chunked = reply.content_type.startswith("text/event-stream")
        headers = {"content-type": reply.content_type, "connection": "close"}
        if chunked:
            headers["transfer-encoding"] = "chunked"
        else:
            headers["content-length"] = str(len(reply.body))
        headers.update((name.lower(), value) for name, value in reply.headers.items())
        faults = [limit for limit in (reply.reset_after, reply.stall_after) if limit is not None]
        cut = min(faults, default=None)
        try:
            writer.write(_head(reply.status, headers))
            await writer.drain()
            for index, piece in enumerate(_pieces(reply.body[:cut], reply.split_seed)):
                if index and await _pause(reply.chunk_delay, client_gone):
                    return _Outcome.CLOSED_EARLY
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                await writer.drain()
            if cut is None:
                if chunked:
                    writer.write(b"0\r\n\r\n")
                await writer.drain()
                return _Outcome.COMPLETED
            if cut == reply.reset_after:
                writer.transport.abort()
                return _Outcome.FAULT
            await client_gone  # stalled: until the client leaves; stop() cancels this task
            return _Outcome.CLOSED_EARLY
        except ConnectionError:
            return _Outcome.CLOSED_EARLY


def _head(status: int, headers: dict[str, str]) -> bytes:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _pieces(body: bytes, seed: int | None) -> list[bytes]:
    """The body as pieces to send: whole, or random sizes 1..64 drawn from `seed`; never an empty piece."""
    if seed is None:
        return [body] if body else []
    rng = random.Random(seed)
    pieces, start = [], 0
    while start < len(body):
        size = rng.randint(1, 64)
        pieces.append(body[start : start + size])
        start += size
    return pieces


async def _pause(delay: float, client_gone: asyncio.Task[None]) -> bool:
    """Waits `delay` seconds between pieces (at least one loop turn); True when the client has left."""
    if delay > 0:
        await asyncio.wait({client_gone}, timeout=delay)
    else:
        await asyncio.sleep(0)
    return client_gone.done()


async def _wait_for_eof(reader: asyncio.StreamReader) -> None:
    """Returns when the client closes its side of the connection (or it breaks)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


async def _read_request(reader: asyncio.StreamReader) -> RecordedRequest | None:
    """Reads one request: head, then a Content-Length or chunked body. None if the client sent nothing."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise
        return None
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in filter(None, header_lines):
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, up to the empty line
            pass
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return RecordedRequest(method, target.split("?", 1)[0], headers, body)

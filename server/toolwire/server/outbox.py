"""The send path: at most one write in flight, and the text queued behind it merged into one message.

A chat hands its events to an `Outbox`, which writes them to the client through one `write` coroutine
(the servicer's gRPC write). Nothing waits for a timer:

- with no write in flight, an event's write starts at once and `send` returns without waiting for it,
  so the chat goes back to reading the provider while gRPC sends;
- while a write is in flight, a `TextOut` of the same model round as the text already queued is
  appended to it: when the write completes, everything queued goes out as one message. It would
  have waited for that write anyway, so merging changes neither the text nor when it arrives;
- any other event (a tool request, usage, the finish, text of another round) keeps its order: `send`
  first waits until everything queued before it is written, then starts its write.

Flow control: once the queued text is over `max_buffered_bytes`, `send` waits until the write in
flight completes and takes it. A client that does not read thus still holds the chat, and with it the
provider's stream, back: a chat holds at most one message in flight and one queued, each at most the
bound plus one chunk.

A failed write (the call ended under the chat) surfaces at the next `send` or `flush`, and again at
every one after it. The writer is a task the outbox owns; `aclose` cancels it, so a chat that ends
without flushing (cancelled, or past its deadline) leaves no task behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from toolwire.server.chat_events import ChatEvent, TextOut

Write = Callable[[ChatEvent], Awaitable[None]]

MAX_BUFFERED_BYTES = 32 * 1024
"""Text queued behind a write in flight before `send` waits. By then a merged message carries a few
thousand provider chunks (typically 4-20 bytes each), so gRPC's fixed cost per message (~80 µs of CPU)
is spread so thin that more buffering saves nothing; and a message stays far below the 4 MiB a gRPC
client accepts by default. A chat whose client does not read holds about two such messages."""


class Outbox:
    """Writes one chat's events in order through `write`, merging queued text (see the module doc).

    One task sends at a time (the chat loop): `send` and `flush` are not meant to be called
    concurrently with each other.
    """

    def __init__(self, write: Write, max_buffered_bytes: int = MAX_BUFFERED_BYTES) -> None:
        self._write = write
        self._max_buffered_bytes = max_buffered_bytes
        self._writer: asyncio.Task[None] | None = None
        """The task writing now; None when nothing is in flight."""
        self._queued_parts: list[str] = []
        self._queued_round = 0
        self._queued_bytes = 0
        self._error: Exception | None = None
        self._progress: asyncio.Future[None] | None = None
        """What a waiting `send` or `flush` waits on: resolved when the writer takes the queue or stops."""

    async def send(self, event: ChatEvent) -> None:
        """Starts writing `event`, or queues it behind the write in flight (see the module doc).

        Raises the error of an earlier write that failed.
        """
        self._raise_failure()
        if self._writer is None:
            self._start(event)
            return
        if isinstance(event, TextOut) and (not self._queued_parts or event.round == self._queued_round):
            self._queued_parts.append(event.text)
            self._queued_round = event.round
            self._queued_bytes += len(event.text.encode())
            if self._queued_bytes > self._max_buffered_bytes:
                while self._queued_parts and self._writer is not None:
                    await self._writer_progress()
                self._raise_failure()
            return
        await self.flush()
        self._start(event)

    async def flush(self) -> None:
        """Waits until every event sent so far is written; raises the error of a write that failed."""
        while self._writer is not None:
            await self._writer_progress()
        self._raise_failure()

    async def aclose(self) -> None:
        """Drops what is queued and cancels the write in flight, without writing anything more."""
        self._queued_parts = []
        self._queued_bytes = 0
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
            await asyncio.wait([writer])

    def _start(self, event: ChatEvent) -> None:
        self._writer = asyncio.create_task(self._write_all(event))

    async def _write_all(self, event: ChatEvent) -> None:
        """Writes `event`, then whatever text was queued meanwhile, until nothing is queued."""
        try:
            while True:
                await self._write(event)
                if not self._queued_parts:
                    return
                event = TextOut("".join(self._queued_parts), self._queued_round)
                self._queued_parts = []
                self._queued_bytes = 0
                self._wake()
        except Exception as error:  # the failure is raised at the next send or flush
            self._error = error
            self._queued_parts = []
            self._queued_bytes = 0
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None
            self._wake()

    async def _writer_progress(self) -> None:
        if self._progress is None or self._progress.done():
            self._progress = asyncio.get_running_loop().create_future()
        await self._progress

    def _wake(self) -> None:
        if self._progress is not None and not self._progress.done():
            self._progress.set_result(None)

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

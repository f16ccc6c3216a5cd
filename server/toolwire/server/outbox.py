"""The send path: at most one write in flight, the text queued behind it merged into one message, and
an optional window in which text is held to go out as fewer, larger messages.

A chat hands its events to an `Outbox`, which writes them to the client through one `write` coroutine
(the servicer's gRPC write). With no text window (the default) nothing waits for a timer:

- with no write in flight, an event's write starts at once and `send` returns without waiting for it,
  so the chat goes back to reading the provider while gRPC sends;
- while a write is in flight, a `TextOut` of the same model round as the text already queued is
  appended to it: when the write completes, everything queued goes out as one message. It would
  have waited for that write anyway, so merging changes neither the text nor when it arrives;
- any other event (a tool request, usage, the finish, text of another round) keeps its order: `send`
  first waits until everything queued before it is written, then starts its write.

The text window (`ChatStart.text_coalesce_window`, set with `set_text_window` once the start is
known) trades latency the client chose for fewer messages. The first text of a model round goes out
at once. Text of the same round that follows is held (queued) until the window has passed since the
last text write started, then goes out as one message: one `loop.call_later` handle is pending while
text is held, never one per chunk, and none at all without a window. Any other event, `flush`, the
bound below and the end of the chat release the held text at once, ahead of what comes after it.

Flow control: once the queued text is over `max_buffered_bytes`, it is released, and `send` waits
until the write in flight (if any) completes and takes it. A client that does not read thus still
holds the chat, and with it the provider's stream, back: a chat holds at most one message in flight
and one queued, each at most the bound plus one chunk.

A failed write (the call ended under the chat) surfaces at the next `send` or `flush`, and again at
every one after it. The writer is one task per chat, made at the first write, that waits between
writes for the next one: a task per write would cost its creation, the registry of live tasks and its
done callbacks on every paced chunk (~7,000 instructions of ~171,000, counted by `make bench-instructions`;
docs/performance.md). `aclose` cancels it and the window's timer, so a chat that ends without
flushing (cancelled, or past its deadline) leaves nothing behind.
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
        """The chat's writer task, made at the first write; None before it and after `aclose`."""
        self._writing = False
        """A write is in flight: the writer has an event it has not finished writing."""
        self._next: ChatEvent | None = None
        """The event handed to the writer by `_start`, until it takes it."""
        self._next_ready: asyncio.Future[None] | None = None
        """What the idle writer waits on for its next event; None while it is writing."""
        self._queued_parts: list[str] = []
        self._queued_round = 0
        self._queued_bytes = 0
        self._error: Exception | None = None
        self._progress: asyncio.Future[None] | None = None
        """What a waiting `send` or `flush` waits on: resolved when the writer takes the queue or stops."""
        self._window = 0.0
        """The text window in seconds; 0: none (text is never held)."""
        self._timer: asyncio.TimerHandle | None = None
        """The one pending timer that releases held text when the window has passed; None otherwise.
        Only pending while text is held with no write in flight: taking the queue cancels it."""
        self._release = False
        """The queued text goes out as soon as the writer is free, window or not."""
        self._text_round = 0
        """The round of the last text write started (0: none yet)."""
        self._text_started = 0.0
        """When (loop time) the last text write started."""

    @property
    def window_timer_pending(self) -> bool:
        """Whether the window's timer is pending (text is held until it fires); never without a window."""
        return self._timer is not None

    def set_text_window(self, seconds: float) -> None:
        """Sets the text window (see the module doc); 0 turns it off. Set it before the first text."""
        if seconds < 0:
            raise ValueError(f"a text window cannot be negative, got {seconds!r} s")
        self._window = seconds

    async def send(self, event: ChatEvent) -> None:
        """Starts writing `event`, or queues it behind the write in flight or the window (module doc).

        Raises the error of an earlier write that failed.
        """
        self._raise_failure()
        if not self._writing and not self._queued_parts:
            if self._window and type(event) is TextOut and not self._text_due(event.round):
                self._queue(event)
                self._arm_timer()
            else:
                self._start(event)
            return
        if isinstance(event, TextOut) and (not self._queued_parts or event.round == self._queued_round):
            self._queue(event)
            if self._queued_bytes > self._max_buffered_bytes:
                await self._release_queued(until_written=False)
            return
        await self.flush()
        self._start(event)

    async def flush(self) -> None:
        """Writes what is held at once, then waits until every event sent so far is written; raises
        the error of a write that failed."""
        await self._release_queued(until_written=True)

    async def aclose(self) -> None:
        """Drops what is queued or held, cancels the window's timer and the write in flight, without
        writing anything more."""
        self._drop_queued()
        self._writing = False
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
            await asyncio.wait([writer])

    def _queue(self, text: TextOut) -> None:
        self._queued_parts.append(text.text)
        self._queued_round = text.round
        self._queued_bytes += len(text.text.encode())

    async def _release_queued(self, until_written: bool) -> None:
        """Sends the queued or held text at once (window or not) and waits until a write has taken
        it, and with `until_written` until everything is written; raises a failed write's error."""
        while self._queued_parts or (until_written and self._writing):
            if not self._writing:
                self._start(self._take_queued())
            else:
                self._release = bool(self._queued_parts)
                await self._writer_progress()
        self._raise_failure()

    def _take_queued(self) -> TextOut:
        """The queued text as one event, leaving the queue (and its timer) empty."""
        event = TextOut("".join(self._queued_parts), self._queued_round)
        self._drop_queued()
        self._wake()
        return event

    def _drop_queued(self) -> None:
        self._queued_parts = []
        self._queued_bytes = 0
        self._release = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _text_due(self, model_round: int) -> bool:
        """Whether text of `model_round` may be written now: the round's first text, or the window
        has passed since the last text write started."""
        if model_round != self._text_round:
            return True
        return asyncio.get_running_loop().time() >= self._text_started + self._window

    def _queued_due(self) -> bool:
        return not self._window or self._release or self._text_due(self._queued_round)

    def _arm_timer(self) -> None:
        """Schedules the release of the held text for when the window has passed."""
        assert self._timer is None, "one window timer at a time"
        loop = asyncio.get_running_loop()
        delay = self._text_started + self._window - loop.time()
        self._timer = loop.call_later(delay, self._window_passed)

    def _window_passed(self) -> None:
        self._timer = None
        self._start(self._take_queued())

    def _start(self, event: ChatEvent) -> None:
        """Hands `event` to the writer (nothing is in flight), making the writer at the first write."""
        self._writing = True
        self._next = event
        if self._writer is None:
            self._writer = asyncio.create_task(self._run_writer())
        elif self._next_ready is not None:
            self._next_ready.set_result(None)

    async def _run_writer(self) -> None:
        """The writer: writes each event handed to it (with the text queued behind it), then waits for
        the next; ends at the first failed write, or when `aclose` cancels it."""
        loop = asyncio.get_running_loop()
        while True:
            event = self._next
            if event is None:
                self._next_ready = loop.create_future()
                try:
                    await self._next_ready
                finally:
                    self._next_ready = None
                continue
            self._next = None
            try:
                await self._write_all(event)
            except Exception as error:  # the failure is raised at the next send or flush
                self._error = error
                self._drop_queued()
                return
            finally:
                self._writing = False
                self._wake()

    async def _write_all(self, event: ChatEvent) -> None:
        """Writes `event`, then the text queued meanwhile while it is due; a queue not yet due is
        left held, with its timer armed."""
        while True:
            if self._window and type(event) is TextOut:
                self._text_round = event.round
                self._text_started = asyncio.get_running_loop().time()
            await self._write(event)
            if not self._queued_parts:
                return
            if not self._queued_due():
                self._arm_timer()
                return
            event = self._take_queued()

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

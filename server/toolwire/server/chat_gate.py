"""Every Chat call passes through the gate: the cap on concurrent chats, the per-chat deadline, the
shutdown drain, the final status, and the one log line per chat.

Each chat runs as its own task so the gate can end it on purpose: past its deadline (DEADLINE_EXCEEDED),
or when the shutdown grace is over (UNAVAILABLE). Either way the chat's model stream is closed by the
cancellation and the client gets a proper status from `context.abort`, never a reset stream.

When the call ends under the chat (the client cancelled it or went away), grpc cancels the handler
(once: grpc.aio has no other sign of it; `context.cancelled()` and `done()` stay False, and a done
callback runs only after the handler has returned). The gate does not wait for that cancel to travel
through the chat: it sees it itself, tells the chat through `call_ended` (which ends its waits for
tool results without any cancel) and cancels the chat, then waits until the chat has stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc

from toolwire.server.chat_count import SharedChatCount
from toolwire.server.chat_record import ChatRecord
from toolwire.server.errors import ToolwireError
from toolwire.server.refusal import refuse
from toolwire.server.status import status_for, trailing_metadata_for

log = logging.getLogger(__name__)

SHUTTING_DOWN = "the server is shutting down: open the chat on another instance"
SHUT_DOWN = "the server shut down before the chat finished; retry on another instance"

Trailers = tuple[tuple[str, bytes], ...]
ChatRunner = Callable[[ChatRecord], Coroutine[Any, Any, object]]


@dataclass(slots=True, frozen=True)
class Ending:
    """Why the gate ended a chat, and what its client is told."""

    code: grpc.StatusCode
    message: str


def _too_many(running: str) -> Ending:
    return Ending(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"{running}, the most this server takes (max_concurrent_chats): retry later or on another instance",
    )


class ChatGate:
    """Admits, bounds and, at shutdown, drains the chats of one server."""

    def __init__(
        self,
        max_concurrent_chats: int,
        chat_deadline_seconds: float = 0.0,
        shared_count: SharedChatCount | None = None,
    ) -> None:
        self._max_concurrent_chats = max_concurrent_chats
        self._chat_deadline_seconds = chat_deadline_seconds
        self._shared_count = shared_count
        """The count of the server's workers together (chat_count.py); None: one process."""
        self._running: set[asyncio.Task[object]] = set()
        self._endings: dict[asyncio.Task[object], Ending] = {}
        self._closed = False

    @property
    def running(self) -> int:
        return len(self._running)

    async def run(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        runner: ChatRunner,
        call_ended: Callable[[], None] = lambda: None,
    ) -> None:
        """Runs one chat through `runner`, then logs its line and ends the call with its status.

        `call_ended` is called if the call ends (this handler is cancelled) before the chat does.
        """
        record = ChatRecord()
        refusal = self._refusal()  # from here on the chat holds its place in the shared count
        if refusal is not None:
            record.log_outcome("refused", refusal.code.name, refusal.message)
            await refuse(context, refusal.code, refusal.message)
        chat: asyncio.Task[object] = asyncio.create_task(runner(record))
        self._running.add(chat)
        deadline = self._start_deadline(chat)
        try:
            code, message, trailers = await self._outcome(chat, record, call_ended)
        finally:
            self._running.discard(chat)
            self._endings.pop(chat, None)
            if deadline is not None:
                deadline.cancel()
            if self._shared_count is not None:
                self._shared_count.release()
        record.log_outcome("finished" if code is grpc.StatusCode.OK else "failed", code.name, message)
        if code is not grpc.StatusCode.OK:
            await context.abort(code, message, trailers)

    def _refusal(self) -> Ending | None:
        """Why a new chat is refused; None: it is admitted (and counted in the shared count)."""
        if self._closed:
            return Ending(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
        shared = self._shared_count
        if shared is not None:  # the workers' count holds this worker's chats too
            running = shared.admit()
            if running is not None:
                return _too_many(f"{running} chats are running on this server's {shared.workers} workers")
        elif len(self._running) >= self._max_concurrent_chats:
            return _too_many(f"{len(self._running)} chats are running")
        return None

    def _start_deadline(self, chat: asyncio.Task[object]) -> asyncio.TimerHandle | None:
        seconds = self._chat_deadline_seconds
        if seconds <= 0:
            return None
        ending = Ending(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the chat ran longer than this server allows (chat_deadline_seconds = {seconds:g}): "
            "split the work into shorter chats, or raise the server's chat_deadline_seconds",
        )
        return asyncio.get_running_loop().call_later(seconds, self._end, chat, ending)

    def _end(self, chat: asyncio.Task[object], ending: Ending) -> None:
        if not chat.done() and chat not in self._endings:
            self._endings[chat] = ending
            chat.cancel()

    async def _outcome(
        self, chat: asyncio.Task[object], record: ChatRecord, call_ended: Callable[[], None]
    ) -> tuple[grpc.StatusCode, str, Trailers]:
        try:
            await asyncio.wait([chat])  # unlike `await chat`, a cancel of this handler comes here at once
        except asyncio.CancelledError:
            # The call ended under the chat (or the server is stopping). End the chat now, whatever
            # it was waiting on, and return only once it has stopped.
            call_ended()
            chat.cancel()
            await asyncio.wait([chat])
            error = None if chat.cancelled() else chat.exception()
            if error is not None and not isinstance(error, ToolwireError):
                log.error("chat %s failed as its call ended", record.chat_id, exc_info=error)
            record.log_outcome("cancelled", grpc.StatusCode.CANCELLED.name, "cancelled by the client")
            raise
        try:
            chat.result()
        except asyncio.CancelledError:
            ending = self._endings.get(chat)
            current = asyncio.current_task()
            if ending is None or (current is not None and current.cancelling()):
                record.log_outcome("cancelled", grpc.StatusCode.CANCELLED.name, "cancelled by the client")
                raise
            return ending.code, ending.message, ()
        except Exception as error:
            code, message = status_for(error)
            return code, message, trailing_metadata_for(error, code, message)
        return grpc.StatusCode.OK, "", ()

    def close(self) -> None:
        """From now on a new chat is refused with UNAVAILABLE (once its start arrives: refusal.py)."""
        self._closed = True

    async def drain(self, grace_seconds: float) -> None:
        """Closes the gate, lets running chats go on for up to `grace_seconds`, then ends the rest with
        UNAVAILABLE and waits until their chat tasks have stopped."""
        self.close()
        running = set(self._running)
        if running:
            log.info("shutting down: %d chat(s) running, waiting up to %g s", len(running), grace_seconds)
            _, running = (
                await asyncio.wait(running, timeout=grace_seconds) if grace_seconds > 0 else (set(), running)
            )
        if running:
            log.info("shutdown grace over: ending %d chat(s) with UNAVAILABLE", len(running))
            for chat in running:
                self._end(chat, Ending(grpc.StatusCode.UNAVAILABLE, SHUT_DOWN))
            await asyncio.wait(running)

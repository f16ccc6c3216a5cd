"""One Chat stream from first message to last: protocol order, the result reader, the loop.

This is transport-neutral: it speaks to a `ChatStream` that yields domain objects, so the protocol
rules (start first and once, results only for issued calls, what a half-close means) are tested
without gRPC. The servicer provides the gRPC `ChatStream`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from toolwire.server.chat_events import ChatEvent, ChatFinished, ChatStarted
from toolwire.server.chat_record import ChatRecord
from toolwire.server.conversation import ChatRequest, ToolResult
from toolwire.server.errors import CallEnded, InvalidRequest, ToolwireError
from toolwire.server.loop import ChatLoop
from toolwire.server.models.registry import ModelRegistry
from toolwire.server.pending import PendingCalls
from toolwire.server.settings import ServerSettings
from toolwire.server.telemetry import NO_TELEMETRY, ChatTelemetry

log = logging.getLogger(__name__)


class ChatStream(Protocol):
    """The client's side of one chat, in domain terms."""

    async def receive(self) -> ChatRequest | ToolResult | None:
        """The client's next message; None once the client has closed its side."""
        ...

    async def send(self, event: ChatEvent) -> None:
        """Sends one event to the client."""
        ...


class CallBoundStream(ChatStream, Protocol):
    """A `ChatStream` that knows when its call ends under the chat (the gRPC one does)."""

    def on_call_end(self, hook: Callable[[], None]) -> None:
        """Calls `hook` once the call has ended under the chat (the client cancelled or went away)."""
        ...


_CALL_GONE = "the call ended under the chat (the client cancelled it or went away)"

HALF_CLOSE_GRACE_SECONDS = 0.2
"""How long the end of a client's requests, with tool calls still waiting, is given to turn out to be
the end of the call (a cancel, a deadline) before it is the client's protocol error. Measured: a
client's deadline ended the read before the call in ~1 of 10 chats in process, and in most chats
against a server process under load; the end of the call followed within milliseconds."""


class ChatSessions:
    """Runs chats against the configured models."""

    def __init__(
        self, registry: ModelRegistry, settings: ServerSettings, telemetry: ChatTelemetry = NO_TELEMETRY
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._telemetry = telemetry

    async def run(self, stream: ChatStream, record: ChatRecord | None = None) -> ChatFinished:
        """Runs one chat to its end; raises ToolwireError for anything that ends it otherwise.

        `record` receives the chat's id, model and result as they become known; the caller writes
        the chat's one log line from it once it knows the final status (see chat_record.py).
        """
        record = record if record is not None else ChatRecord()
        record.finished = await self._run(record, stream)
        return record.finished

    async def _run(self, record: ChatRecord, stream: ChatStream) -> ChatFinished:
        first = await stream.receive()
        if first is None:
            raise InvalidRequest("the stream closed before any message: send ChatRequest.start first")
        if not isinstance(first, ChatRequest):
            raise InvalidRequest(
                f"the first message must be start, not tool_result (for {first.tool_call_id!r}): "
                "open the chat with ChatRequest.start"
            )
        record.model = first.model
        model = self._registry.resolve(first.model)
        record.model = model.model_id
        limits = self._settings.limits
        pending = PendingCalls(first.tool_timeout_seconds, limits.max_tool_result_bytes)
        on_call_end = getattr(stream, "on_call_end", None)  # a CallBoundStream (an isinstance check
        if on_call_end is not None:  # against a Protocol costs ~20 µs per chat here)
            # Besides the cancel: a wait for tool results ends even if a cancel was lost on its way.
            on_call_end(lambda: pending.end_call(CallEnded(_CALL_GONE)))
        loop = ChatLoop(first, model, pending, stream.send, self._telemetry)
        await stream.send(ChatStarted(record.chat_id, model.model_id))
        return await _run_beside_reader(loop, _read_results(stream, pending))


async def _run_beside_reader(loop: ChatLoop, reader_coroutine: Coroutine[Any, Any, None]) -> ChatFinished:
    """Runs the chat in this task and the result reader in a task of its own, ended together.

    A reader that fails (a protocol error from the client) cancels the chat, which then ends with the
    reader's error; a chat that ends, however it ends, cancels the reader and waits until it has
    stopped. Which error is reported when both fail is `_reported`'s choice.

    This is what an `asyncio.TaskGroup` of the two would do, with two differences. The chat needs no
    task of its own, so nothing waits for the event loop between the chat's start and its first
    model call. And the reader's cancel of the chat is always taken back: Python 3.11's TaskGroup
    leaves the task that ran it cancelling when a task of the group fails while it waits for them
    (CPython gh-116720, fixed in 3.12), and any later wait in that task that checks for a pending
    cancel (`asyncio.timeout`, pending.py's) would end at once.
    """
    chat = asyncio.current_task()
    assert chat is not None
    reader = asyncio.create_task(reader_coroutine)
    cancelled_by_reader = False

    def on_reader_done(task: asyncio.Task[None]) -> None:
        nonlocal cancelled_by_reader
        if _failed(task):
            cancelled_by_reader = True
            chat.cancel()

    reader.add_done_callback(on_reader_done)
    try:
        finished = await loop.run()
    except asyncio.CancelledError:
        if cancelled_by_reader and chat.uncancel() == 0:  # the reader's cancel, and no other
            raise _reported(reader, None) from None
        raise
    except Exception as error:
        if cancelled_by_reader:
            chat.uncancel()  # taken by the chat on its way to this error
        if _failed(reader):
            raise _reported(reader, error) from None
        raise
    finally:
        reader.remove_done_callback(on_reader_done)
        if not reader.done():
            reader.cancel()
            await asyncio.wait([reader])
    if cancelled_by_reader:
        chat.uncancel()  # taken by the chat on its way to its end
    if _failed(reader):  # the reader failed as the chat ended (before its done callback could run)
        raise _reported(reader, None)
    return finished


def _failed(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


def _reported(reader: asyncio.Task[None], chat_error: Exception | None) -> BaseException:
    """The error a chat ends with when its reader failed: the first ToolwireError of the reader's and
    the chat's own (if it failed too), else the reader's."""
    reader_error = reader.exception()
    assert reader_error is not None
    if isinstance(reader_error, ToolwireError) or not isinstance(chat_error, ToolwireError):
        return reader_error
    return chat_error


async def _read_results(stream: ChatStream, pending: PendingCalls) -> None:
    """Routes the client's tool results until it closes its side of the stream."""
    while True:
        message = await stream.receive()
        if message is None:
            if pending.waiting:
                # A client's cancel or deadline ends its request stream too, and gRPC may tell us of
                # the read's end before it ends the call: wait a moment for that end (it cancels this
                # task), so that a cancel is not reported as a half-close with calls outstanding.
                await asyncio.sleep(HALF_CLOSE_GRACE_SECONDS)
            pending.close_input()
            return
        if isinstance(message, ChatRequest):
            raise InvalidRequest(
                "a second start on the same stream: a chat has exactly one start; "
                "open a new Chat stream for a new conversation"
            )
        pending.deliver(message)

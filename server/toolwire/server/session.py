"""One Chat stream from first message to last: protocol order, the result reader, the loop.

This is transport-neutral: it speaks to a `ChatStream` that yields domain objects, so the protocol
rules (start first and once, results only for issued calls, what a half-close means) are tested
without gRPC. The servicer provides the gRPC `ChatStream`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

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
        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(_read_results(stream, pending))
                chat = group.create_task(loop.run())
                chat.add_done_callback(lambda _: reader.cancel())
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None
        return chat.result()


async def _read_results(stream: ChatStream, pending: PendingCalls) -> None:
    """Routes the client's tool results until it closes its side of the stream."""
    while True:
        message = await stream.receive()
        if message is None:
            pending.close_input()
            return
        if isinstance(message, ChatRequest):
            raise InvalidRequest(
                "a second start on the same stream: a chat has exactly one start; "
                "open a new Chat stream for a new conversation"
            )
        pending.deliver(message)


def _first_error(group_error: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a failed chat: a ToolwireError if there is one, else the first."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group_error]
    while stack:
        error = stack.pop()
        if isinstance(error, BaseExceptionGroup):
            stack.extend(reversed(error.exceptions))
        else:
            leaves.append(error)
    return next((error for error in leaves if isinstance(error, ToolwireError)), leaves[0])

"""The gRPC servicer: converts proto ↔ domain and hands the chat to `ChatSessions`. Nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.message import DecodeError

from toolwire.server import convert
from toolwire.server.chat_count import shared_chat_count
from toolwire.server.chat_events import ChatEvent, ChatFinished
from toolwire.server.chat_gate import ChatGate
from toolwire.server.chat_record import ChatRecord
from toolwire.server.conversation import ChatRequest, ToolResult
from toolwire.server.errors import CallEnded, InvalidRequest
from toolwire.server.models.registry import ModelRegistry
from toolwire.server.outbox import Outbox
from toolwire.server.session import ChatSessions
from toolwire.server.settings import ServerSettings
from toolwire.server.telemetry import NO_TELEMETRY, ChatTelemetry
from toolwire.v1 import chat_pb2, chat_pb2_grpc

log = logging.getLogger(__name__)

_CALL_ENDED = (
    "gRPC ended the call before the chat did: the client went away, or a request message was over "
    "the server's max_request_bytes (the client got RESOURCE_EXHAUSTED from gRPC)"
)


END_FLUSH_SECONDS = 1.0
"""How long a chat the server ends (its deadline, a shutdown) may take to write the text it had
accepted, held by a text window or queued behind a write, before its status goes out."""


class GrpcChatStream:
    """A `ChatStream` over one gRPC Chat call; its events go out through an `Outbox` (outbox.py)."""

    def __init__(self, context: grpc.aio.ServicerContext[chat_pb2.ChatRequest, chat_pb2.ChatResponse],
                 settings: ServerSettings) -> None:  # fmt: skip
        self._context = context
        self._settings = settings
        self._outbox = Outbox(self._write)
        self._chat: asyncio.Task[object] | None = None
        self._call_ended: CallEnded | None = None
        self._call_end_hooks: list[Callable[[], None]] | None = []
        """None once the call has ended (`end_call`)."""

    def on_call_end(self, hook: Callable[[], None]) -> None:
        """Calls `hook` when the gate sees the call end under the chat (`end_call`); at once if it
        already has."""
        if self._call_end_hooks is None:
            hook()
        else:
            self._call_end_hooks.append(hook)

    def end_call(self) -> None:
        """The call ended before the chat did (the gate's word): tells the hooks, once."""
        hooks, self._call_end_hooks = self._call_end_hooks or [], None
        for hook in hooks:
            hook()

    async def receive(self) -> ChatRequest | ToolResult | None:
        try:
            request = await self._context.read()
        except grpc.aio.InternalError:
            raise CallEnded(_CALL_ENDED) from None
        except DecodeError:
            raise InvalidRequest(
                "a request message is not a toolwire.v1.ChatRequest (its protobuf wire format is corrupt, "
                "or a string field is not UTF-8): send messages serialized from the toolwire.v1 "
                "ChatRequest type"
            ) from None
        if request is grpc.aio.EOF:  # type: ignore[attr-defined]
            return None
        assert isinstance(request, chat_pb2.ChatRequest)
        kind = request.WhichOneof("kind")
        if kind == "start":
            start = convert.chat_request_from_proto(request.start, self._settings)
            self._outbox.set_text_window(start.text_coalesce_window_seconds)
            return start
        if kind == "tool_result":
            return convert.tool_result_from_proto(request.tool_result)
        raise InvalidRequest("a ChatRequest with neither start nor tool_result set: set one of them")

    async def send(self, event: ChatEvent) -> None:
        await self._outbox.send(event)

    async def relay(self, chat: Awaitable[ChatFinished]) -> ChatFinished:
        """Awaits `chat`, then writes all it sent before the call ends with its status.

        Text accepted before a chat fails (a provider error after some text) reaches the client before
        the error status; this also keeps a write from being in flight when the status goes out. So
        does text accepted before the server ends a chat with the client still there (its deadline,
        a shutdown), for up to `END_FLUSH_SECONDS`; once the client is gone nothing more is written.
        A write that finds the call ended ends the chat at once with `CallEnded`, even while it waits
        for tool results.
        """
        self._chat = asyncio.current_task()
        try:
            return await self._flushed(chat)
        except asyncio.CancelledError:
            if self._call_ended is not None and self._chat is not None and self._chat.uncancel() == 0:
                raise self._call_ended from None  # the cancel was ours, from _write
            if self._call_end_hooks is not None:  # the server's cancel: the client is still there
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(END_FLUSH_SECONDS):
                        await self._outbox.flush()
            raise
        finally:
            self._chat = None  # from here on a failed write has nothing to end
            await self._outbox.aclose()

    async def _flushed(self, chat: Awaitable[ChatFinished]) -> ChatFinished:
        try:
            finished = await chat
        except Exception:
            with contextlib.suppress(Exception):  # the chat's own error is the one to report
                await self._outbox.flush()
            raise
        await self._outbox.flush()
        return finished

    async def _write(self, event: ChatEvent) -> None:
        try:
            await self._context.write(convert.event_to_proto(event))
        except grpc.aio.InternalError:
            if self._call_ended is None and self._chat is not None:
                self._call_ended = CallEnded(_CALL_ENDED)
                self._chat.cancel()
            raise CallEnded(_CALL_ENDED) from None


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    """Implements toolwire.v1.ChatService."""

    def __init__(
        self,
        registry: ModelRegistry,
        settings: ServerSettings,
        telemetry: ChatTelemetry = NO_TELEMETRY,
        gate: ChatGate | None = None,
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._sessions = ChatSessions(registry, settings, telemetry)
        self.gate = gate or ChatGate(
            settings.max_concurrent_chats,
            settings.chat_deadline_seconds,
            shared_chat_count(settings.chat_count_file, settings.max_concurrent_chats),
        )
        """Admission, deadline, shutdown drain and the per-chat log line of every Chat."""

    async def Chat(
        self,
        request_iterator: object,
        context: grpc.aio.ServicerContext[chat_pb2.ChatRequest, chat_pb2.ChatResponse],
    ) -> None:
        stream = GrpcChatStream(context, self._settings)
        await self.gate.run(context, lambda record: self._run(stream, record), stream.end_call)

    async def _run(self, stream: GrpcChatStream, record: ChatRecord) -> ChatFinished:
        return await stream.relay(self._sessions.run(stream, record))

    async def ListModels(
        self,
        request: chat_pb2.ListModelsRequest,
        context: grpc.aio.ServicerContext[chat_pb2.ListModelsRequest, chat_pb2.ListModelsResponse],
    ) -> chat_pb2.ListModelsResponse:
        return chat_pb2.ListModelsResponse(
            models=[convert.model_info_to_proto(model) for model in self._registry.list_models()]
        )

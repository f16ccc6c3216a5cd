"""The gRPC servicer: converts proto ↔ domain and hands the chat to `ChatSessions`. Nothing else."""

from __future__ import annotations

import logging

import grpc
from google.protobuf.message import DecodeError

from toolwire.server import convert
from toolwire.server.chat_events import ChatEvent
from toolwire.server.chat_gate import ChatGate
from toolwire.server.conversation import ChatRequest, ToolResult
from toolwire.server.errors import CallEnded, InvalidRequest
from toolwire.server.models.registry import ModelRegistry
from toolwire.server.session import ChatSessions
from toolwire.server.settings import ServerSettings
from toolwire.server.telemetry import NO_TELEMETRY, ChatTelemetry
from toolwire.v1 import chat_pb2, chat_pb2_grpc

log = logging.getLogger(__name__)

_CALL_ENDED = (
    "gRPC ended the call before the chat did: the client went away, or a request message was over "
    "the server's max_request_bytes (the client got RESOURCE_EXHAUSTED from gRPC)"
)


class GrpcChatStream:
    """A `ChatStream` over one gRPC Chat call."""

    def __init__(self, context: grpc.aio.ServicerContext[chat_pb2.ChatRequest, chat_pb2.ChatResponse],
                 settings: ServerSettings) -> None:  # fmt: skip
        self._context = context
        self._settings = settings

    async def receive(self) -> ChatRequest | ToolResult | None:
        try:
            request = await self._context.read()
        except grpc.aio.InternalError:
            raise CallEnded(_CALL_ENDED) from None
        except DecodeError:
            raise InvalidRequest(
                "a request message is not a toolwire.v1.ChatRequest (its protobuf wire format is corrupt): "
                "send messages serialized from the toolwire.v1 ChatRequest type"
            ) from None
        if request is grpc.aio.EOF:  # type: ignore[attr-defined]
            return None
        assert isinstance(request, chat_pb2.ChatRequest)
        kind = request.WhichOneof("kind")
        if kind == "start":
            return convert.chat_request_from_proto(request.start, self._settings)
        if kind == "tool_result":
            return convert.tool_result_from_proto(request.tool_result)
        raise InvalidRequest("a ChatRequest with neither start nor tool_result set: set one of them")

    async def send(self, event: ChatEvent) -> None:
        try:
            await self._context.write(convert.event_to_proto(event))
        except grpc.aio.InternalError:
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
        self.gate = gate or ChatGate(settings.max_concurrent_chats, settings.chat_deadline_seconds)
        """Admission, deadline, shutdown drain and the per-chat log line of every Chat."""

    async def Chat(
        self,
        request_iterator: object,
        context: grpc.aio.ServicerContext[chat_pb2.ChatRequest, chat_pb2.ChatResponse],
    ) -> None:
        stream = GrpcChatStream(context, self._settings)
        await self.gate.run(context, lambda record: self._sessions.run(stream, record))

    async def ListModels(
        self,
        request: chat_pb2.ListModelsRequest,
        context: grpc.aio.ServicerContext[chat_pb2.ListModelsRequest, chat_pb2.ListModelsResponse],
    ) -> chat_pb2.ListModelsResponse:
        return chat_pb2.ListModelsResponse(
            models=[convert.model_info_to_proto(model) for model in self._registry.list_models()]
        )

"""`Client`: opens chats on a toolwire server and runs their tools in this process."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, TypedDict, Unpack, cast

import grpc

from toolwire.client.errors import ToolwireError
from toolwire.client.events import Event, Finish, Message, ToolRequest
from toolwire.client.schema import Tool, tool
from toolwire.client.session import ChatMethod, ChatSession
from toolwire.v1 import chat_pb2, chat_pb2_grpc

ToolLike = Tool | Callable[..., Any]
"""A `Tool`, or a plain function that `tool()` turns into one."""

MessagesLike = str | Iterable[Message | chat_pb2.Message]
"""One user message as a str, or the conversation as `Message` or proto `Message` objects."""

DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024
"""The largest message a `Client` that opens its own channel accepts from the server: 64 MiB.
A `ChatFinish` repeats every message the chat appended, tool results included, so it can be far
larger than gRPC's default limit of 4 MiB."""

_TOOL_CHOICE_MODES = {
    "auto": chat_pb2.TOOL_CHOICE_MODE_AUTO,
    "none": chat_pb2.TOOL_CHOICE_MODE_NONE,
    "required": chat_pb2.TOOL_CHOICE_MODE_REQUIRED,
}


class ChatOptions(TypedDict, total=False):
    """The options of `Client.chat()`, `Client.run()` and `Client.chat_session()`; all optional."""

    tools: Iterable[ToolLike]
    """`Tool` objects or plain functions (wrapped with `tool()`)."""
    max_tool_rounds: int
    """The most model turns that may end in tool calls; 0: the server default."""
    temperature: float | None
    """Sampling temperature; None: the provider default."""
    top_p: float | None
    """Nucleus sampling mass; None: the provider default."""
    max_output_tokens: int
    """The most tokens per model call; 0: the provider default."""
    stop: Iterable[str]
    """Sequences that end generation."""
    tool_choice: str | Tool | None
    """"auto", "none", "required", or a tool (or its name) the model must call."""
    parallel_tool_calls: bool | None
    """Whether the model may call several tools per turn; None: the provider default."""
    tool_timeout: float | None
    """Seconds the server waits for each tool result; None: the server default."""
    stream_tool_arguments: bool
    """Also yield `ToolArgumentsDelta` events."""
    text_coalesce_window: float | timedelta | None
    """Seconds (or a timedelta) the server may hold text to send fewer, larger `TextDelta` events;
    the first text of each round is never held. None or 0: none. At most the server's limit (1 s
    by default). See `ChatStart.text_coalesce_window`."""


@dataclass(frozen=True)
class ModelInfo:
    """A model the server can serve."""

    id: str
    provider: str
    description: str


@dataclass(frozen=True)
class _Methods:
    chat: ChatMethod
    list_models: grpc.aio.UnaryUnaryMultiCallable[chat_pb2.ListModelsRequest, chat_pb2.ListModelsResponse]


class Client:
    """A connection to a toolwire server.

    Args:
        target: The server's address, `host:port` or `unix:/path/to.sock`.
        channel: A channel to use instead; the client does not close it. Its receive limit is
            yours to set (see `max_receive_message_bytes`).
        token: The server's bearer token (its `TOOLWIRE_AUTH_TOKEN`), sent as `authorization:
            Bearer <token>` metadata on every call.
        credentials: TLS channel credentials (`grpc.ssl_channel_credentials(...)`, with a client
            certificate for mutual TLS); None: plaintext.
        max_receive_message_bytes: The largest message accepted from the server, for the channel
            the client opens; None: `DEFAULT_MAX_RECEIVE_MESSAGE_BYTES` (64 MiB). A `ChatFinish`
            repeats the chat's tool results and answer, so it can exceed gRPC's default of 4 MiB;
            a message over the limit ends the chat with RESOURCE_EXHAUSTED. With `channel`, set
            `("grpc.max_receive_message_length", ...)` in that channel's options instead.

    Use as `async with Client(...) as client:`, or call `close()` when done. The channel is
    opened on first use, in the running event loop.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        channel: grpc.aio.Channel | None = None,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        max_receive_message_bytes: int | None = None,
    ) -> None:
        if channel is not None and max_receive_message_bytes is not None:
            raise ValueError(
                "max_receive_message_bytes applies to the channel the client opens; for a channel "
                "passed in, set ('grpc.max_receive_message_length', ...) in its options"
            )
        self._target = target
        if max_receive_message_bytes is None:
            max_receive_message_bytes = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES
        self._channel_options = (("grpc.max_receive_message_length", max_receive_message_bytes),)
        self._channel = channel
        self._credentials = credentials
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._owns_channel = channel is None
        self._methods: _Methods | None = None
        self._closed = False

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel if the client opened it (not a channel passed in)."""
        self._closed = True
        if self._owns_channel and self._channel is not None:
            await self._channel.close(None)
            self._channel = None

    async def list_models(self) -> list[ModelInfo]:
        """The models the server can serve, sorted by id."""
        try:
            response = await self._connect().list_models(
                chat_pb2.ListModelsRequest(), metadata=self._metadata
            )
        except grpc.aio.AioRpcError as error:
            raise ToolwireError.from_rpc_error(error) from None
        return [ModelInfo(model.id, model.provider, model.description) for model in response.models]

    def chat_session(
        self,
        model: str,
        messages: MessagesLike,
        **options: Unpack[ChatOptions],
    ) -> ChatSession:
        """A chat whose tool calls the caller may answer: use `async with`, iterate, `send_result`.

        Tools with a function are still run automatically; a `ToolRequest` for a tool without
        one (`Tool.from_schema(...)` with no function) waits for `session.send_result(...)`.
        The parameters are those of `chat()`.
        """
        tools_by_name = _tools_by_name(options.get("tools", ()))
        start = chat_pb2.ChatStart(
            model=model,
            messages=_messages_to_proto(messages),
            tools=[each.to_proto() for each in tools_by_name.values()],
            max_tool_rounds=options.get("max_tool_rounds", 0),
            max_output_tokens=options.get("max_output_tokens", 0),
            stop=list(options.get("stop", ())),
            stream_tool_arguments=options.get("stream_tool_arguments", False),
        )
        for field in ("temperature", "top_p", "parallel_tool_calls"):
            value = options.get(field)
            if value is not None:
                setattr(start, field, value)
        tool_choice = options.get("tool_choice")
        if tool_choice is not None:
            start.tool_choice.CopyFrom(_tool_choice_to_proto(tool_choice))
        tool_timeout = options.get("tool_timeout")
        if tool_timeout is not None:
            start.tool_timeout.FromNanoseconds(round(tool_timeout * 1e9))
        text_window = options.get("text_coalesce_window")
        if text_window is not None:
            seconds = text_window.total_seconds() if isinstance(text_window, timedelta) else text_window
            start.text_coalesce_window.FromNanoseconds(round(seconds * 1e9))
        return ChatSession(self._connect().chat, start, tools_by_name)

    async def chat(
        self,
        model: str,
        messages: MessagesLike,
        **options: Unpack[ChatOptions],
    ) -> AsyncGenerator[Event, None]:
        """Streams one chat's events, running every tool call with the tool's function.

        Args:
            model: The model as `provider/model-name`, e.g. "scripted/weather".
            messages: One user message as a str, or the conversation so far, oldest first.
            **options: See `ChatOptions`.

        Each `ToolRequest` is yielded, then the tool runs as its own task (sync functions in a
        thread) and a `ToolResultSent` follows once its result is sent. The last event is
        `Finish`. Stopping early (break, `aclose()`, cancellation) cancels the chat and its
        running tools; wrap the iterator in `contextlib.aclosing` to make that immediate.

        Raises:
            ToolwireError: The chat ended with a non-OK status.
            RuntimeError: The model called a tool that has no function (use `chat_session()`).
        """
        session = self.chat_session(
            model,
            messages,
            **options,
        )
        async with session:
            async for event in session:
                if isinstance(event, ToolRequest) and not session.runs_automatically(event.name):
                    raise _no_function_error(event.name)
                yield event

    async def run(
        self,
        model: str,
        messages: MessagesLike,
        **options: Unpack[ChatOptions],
    ) -> Finish:
        """Runs a whole chat like `chat()` (same parameters) and returns its `Finish` event."""
        events = self.chat(
            model,
            messages,
            **options,
        )
        async with aclosing(events):
            async for event in events:
                if isinstance(event, Finish):
                    return event
        raise ToolwireError(grpc.StatusCode.INTERNAL, "the chat ended without a Finish event")

    def _connect(self) -> _Methods:
        """The RPC methods, opening the channel on first use."""
        if self._closed:
            raise RuntimeError("this Client is closed; create a new one")
        if self._methods is None:
            if self._channel is None:
                self._channel = (
                    grpc.aio.secure_channel(self._target, self._credentials, self._channel_options)
                    if self._credentials is not None
                    else grpc.aio.insecure_channel(self._target, self._channel_options)
                )
            stub = chat_pb2_grpc.ChatServiceStub(self._channel)  # type: ignore[no-untyped-call]
            chat = cast(ChatMethod, functools.partial(stub.Chat, metadata=self._metadata))
            self._methods = _Methods(chat=chat, list_models=stub.ListModels)
        return self._methods


def _no_function_error(tool_name: str) -> RuntimeError:
    return RuntimeError(
        f"the model called tool {tool_name!r}, which has no function to run: chat() and run() only "
        "run tools that have one; use Client.chat_session() and session.send_result() to answer it yourself"
    )


def _tools_by_name(tools: Iterable[ToolLike]) -> dict[str, Tool]:
    """The tools keyed by name, plain functions wrapped with `tool()`; names must be unique."""
    tools_by_name: dict[str, Tool] = {}
    for each in tools:
        converted = each if isinstance(each, Tool) else tool(each)
        if converted.name in tools_by_name:
            raise ValueError(f"two tools are named {converted.name!r}: tool names must be unique")
        tools_by_name[converted.name] = converted
    return tools_by_name


def _messages_to_proto(messages: MessagesLike) -> list[chat_pb2.Message]:
    if isinstance(messages, str):
        return [Message.user(messages).to_proto()]
    converted: list[chat_pb2.Message] = []
    for message in messages:
        if isinstance(message, Message):
            converted.append(message.to_proto())
        elif isinstance(message, chat_pb2.Message):
            converted.append(message)
        else:
            raise TypeError(
                f"messages must be Message or toolwire.v1 Message objects, not {type(message).__name__}"
            )
    return converted


def _tool_choice_to_proto(tool_choice: str | Tool) -> chat_pb2.ToolChoice:
    """The modes "auto", "none" and "required"; any other name (or a Tool) is the tool to call."""
    if isinstance(tool_choice, Tool):
        return chat_pb2.ToolChoice(mode=chat_pb2.TOOL_CHOICE_MODE_TOOL, tool_name=tool_choice.name)
    mode = _TOOL_CHOICE_MODES.get(tool_choice)
    if mode is not None:
        return chat_pb2.ToolChoice(mode=mode)
    return chat_pb2.ToolChoice(mode=chat_pb2.TOOL_CHOICE_MODE_TOOL, tool_name=tool_choice)

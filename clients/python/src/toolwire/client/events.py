"""Conversation messages and the events a chat yields, as plain frozen dataclasses.

`Message` and `ToolCall` convert both ways with the proto messages, so `Finish.messages` can be
appended to the history of the next chat. The events convert one way, from the server's
`ChatResponse`, with `event_from_proto`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from toolwire.v1 import chat_pb2

_ROLES_TO_PROTO = {
    "system": chat_pb2.ROLE_SYSTEM,
    "user": chat_pb2.ROLE_USER,
    "assistant": chat_pb2.ROLE_ASSISTANT,
    "tool": chat_pb2.ROLE_TOOL,
}
_ROLES_FROM_PROTO = {number: role for role, number in _ROLES_TO_PROTO.items()}
_FINISH_REASONS = {
    chat_pb2.FINISH_REASON_STOP: "stop",
    chat_pb2.FINISH_REASON_LENGTH: "length",
    chat_pb2.FINISH_REASON_MAX_TOOL_ROUNDS: "max_tool_rounds",
    chat_pb2.FINISH_REASON_CONTENT_FILTER: "content_filter",
    chat_pb2.FINISH_REASON_OTHER: "other",
}


@dataclass(frozen=True)
class ToolCall:
    """One tool call an assistant message made."""

    id: str
    name: str
    arguments_json: str = "{}"

    def to_proto(self) -> chat_pb2.ToolCall:
        """The proto `ToolCall`."""
        return chat_pb2.ToolCall(id=self.id, name=self.name, arguments_json=self.arguments_json)

    @classmethod
    def from_proto(cls, call: chat_pb2.ToolCall) -> ToolCall:
        """Converts a proto `ToolCall`."""
        return cls(id=call.id, name=call.name, arguments_json=call.arguments_json)


@dataclass(frozen=True)
class Message:
    """One turn of the conversation.

    Attributes:
        role: "system", "user", "assistant" or "tool".
        content: The text; may be empty for an assistant message that only calls tools.
        tool_calls: The tool calls an assistant message made, in order.
        tool_call_id: For a tool message: the id of the call it answers.
        is_error: For a tool message: True when `content` describes a failure.
    """

    role: str
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str = ""
    is_error: bool = False

    def __post_init__(self) -> None:
        if self.role not in _ROLES_TO_PROTO:
            raise ValueError(f"message role {self.role!r} is not one of {', '.join(_ROLES_TO_PROTO)}")

    @classmethod
    def system(cls, text: str) -> Message:
        """A system message: instructions for the model."""
        return cls(role="system", content=text)

    @classmethod
    def user(cls, text: str) -> Message:
        """A user message."""
        return cls(role="user", content=text)

    @classmethod
    def assistant(cls, text: str, tool_calls: list[ToolCall] | None = None) -> Message:
        """An assistant message, optionally with the tool calls it made."""
        return cls(role="assistant", content=text, tool_calls=list(tool_calls or []))

    @classmethod
    def tool(cls, tool_call_id: str, content: str, *, is_error: bool = False) -> Message:
        """A tool result answering the call `tool_call_id`."""
        return cls(role="tool", content=content, tool_call_id=tool_call_id, is_error=is_error)

    def to_proto(self) -> chat_pb2.Message:
        """The proto `Message`."""
        return chat_pb2.Message(
            role=_ROLES_TO_PROTO[self.role],
            content=self.content,
            tool_calls=[call.to_proto() for call in self.tool_calls],
            tool_call_id=self.tool_call_id,
            is_error=self.is_error,
        )

    @classmethod
    def from_proto(cls, message: chat_pb2.Message) -> Message:
        """Converts a proto `Message`; raises ValueError for an unset or unknown role."""
        role = _ROLES_FROM_PROTO.get(message.role)
        if role is None:
            raise ValueError(f"proto message has role {message.role}, which is not a known toolwire role")
        return cls(
            role=role,
            content=message.content,
            tool_calls=[ToolCall.from_proto(call) for call in message.tool_calls],
            tool_call_id=message.tool_call_id,
            is_error=message.is_error,
        )


@dataclass(frozen=True)
class Started:
    """The first event of every chat."""

    chat_id: str
    model: str


@dataclass(frozen=True)
class TextDelta:
    """A piece of the model's text, to append to what came before in the same round."""

    text: str
    round: int


@dataclass(frozen=True)
class ToolRequest:
    """The model called a tool; in manual mode answer it with `ChatSession.send_result`."""

    tool_call_id: str
    name: str
    arguments: dict[str, Any]
    arguments_json: str
    round: int
    trace_context: dict[str, str] = field(default_factory=dict)
    """W3C trace context of the server's span for this call (empty when the server does not trace);
    with OpenTelemetry installed, the client's span for running the tool becomes its child."""


@dataclass(frozen=True)
class ToolArgumentsDelta:
    """A piece of a tool call's arguments as the model writes them (opt-in; informational)."""

    tool_call_id: str
    name: str
    arguments_delta: str
    round: int


@dataclass(frozen=True)
class ToolCallAbandoned:
    """The server stopped waiting for a tool call's result (it timed out); a late result is ignored."""

    tool_call_id: str
    reason: str
    round: int


@dataclass(frozen=True)
class ToolCallRejected:
    """A tool call the server refused and answered itself; nothing to do."""

    tool_call_id: str
    name: str
    arguments_json: str
    reason: str
    round: int


@dataclass(frozen=True)
class Usage:
    """Token usage of one model call. A count the provider did not report is None."""

    round: int
    input_tokens: int | None
    output_tokens: int | None


@dataclass(frozen=True)
class ToolResultSent:
    """A tool with a function ran and its result was sent to the server (automatic mode)."""

    tool_call_id: str
    name: str
    content: str
    is_error: bool


@dataclass(frozen=True)
class Finish:
    """The end of a chat that completed: the last event.

    Attributes:
        reason: "stop", "length", "max_tool_rounds", "content_filter" or "other".
        text: The final answer: the text of the last model call.
        tools_called: The name of every tool call sent to the client, in order.
        chunks_received: Content chunks received from the model over all rounds.
        rounds: Model calls made.
        input_tokens: Tokens read over all model calls; None if any call did not report it.
        output_tokens: Tokens written over all model calls; None if any call did not report it.
        duration_seconds: Wall time on the server from the start to this event.
        messages: Every message the chat appended to the conversation; append them to the
            history you sent to continue the conversation.
        model: The model that served the chat.
    """

    reason: str
    text: str
    tools_called: list[str]
    chunks_received: int
    rounds: int
    input_tokens: int | None
    output_tokens: int | None
    duration_seconds: float
    messages: list[Message]
    model: str


Event: TypeAlias = (
    Started
    | TextDelta
    | ToolArgumentsDelta
    | ToolRequest
    | ToolCallRejected
    | ToolCallAbandoned
    | Usage
    | ToolResultSent
    | Finish
)
"""Everything a chat yields."""


def event_from_proto(response: chat_pb2.ChatResponse) -> Event | None:
    """Converts one server event; None for an event kind this client does not know."""
    kind = response.WhichOneof("event")
    if kind == "started":
        return Started(chat_id=response.started.chat_id, model=response.started.model)
    if kind == "text_delta":
        return TextDelta(text=response.text_delta.text, round=response.text_delta.round)
    if kind == "tool_request":
        return _tool_request_from_proto(response.tool_request)
    if kind == "tool_arguments_delta":
        delta = response.tool_arguments_delta
        return ToolArgumentsDelta(delta.tool_call_id, delta.name, delta.arguments_delta, delta.round)
    if kind == "tool_call_abandoned":
        abandoned = response.tool_call_abandoned
        return ToolCallAbandoned(abandoned.tool_call_id, abandoned.reason, abandoned.round)
    if kind == "tool_call_rejected":
        rejected = response.tool_call_rejected
        return ToolCallRejected(
            rejected.tool_call_id, rejected.name, rejected.arguments_json, rejected.reason, rejected.round
        )
    if kind == "usage":
        input_tokens, output_tokens = _usage_from_proto(response.usage.usage)
        return Usage(round=response.usage.round, input_tokens=input_tokens, output_tokens=output_tokens)
    if kind == "finish":
        return finish_from_proto(response.finish)
    return None


def finish_from_proto(finish: chat_pb2.ChatFinish) -> Finish:
    """Converts a `ChatFinish`."""
    input_tokens, output_tokens = _usage_from_proto(finish.usage)
    return Finish(
        reason=_FINISH_REASONS.get(finish.reason, "other"),
        text=finish.text,
        tools_called=list(finish.tools_called),
        chunks_received=finish.chunks_received,
        rounds=finish.rounds,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        duration_seconds=finish.duration.seconds + finish.duration.nanos / 1e9,
        messages=[Message.from_proto(message) for message in finish.messages],
        model=finish.model,
    )


def _usage_from_proto(usage: chat_pb2.Usage) -> tuple[int | None, int | None]:
    """The two counts, with None for a count the server left unset (not 0)."""
    input_tokens = usage.input_tokens if usage.HasField("input_tokens") else None
    output_tokens = usage.output_tokens if usage.HasField("output_tokens") else None
    return input_tokens, output_tokens


def _tool_request_from_proto(request: chat_pb2.ToolRequest) -> ToolRequest:
    arguments = json.loads(request.arguments_json) if request.arguments_json.strip() else {}
    if not isinstance(arguments, dict):
        raise ValueError(
            f"the server sent tool call {request.tool_call_id!r} ({request.name}) with arguments that are "
            f"not a JSON object: {request.arguments_json[:200]}"
        )
    return ToolRequest(
        tool_call_id=request.tool_call_id,
        name=request.name,
        arguments=arguments,
        arguments_json=request.arguments_json,
        round=request.round,
        trace_context=dict(request.trace_context),
    )

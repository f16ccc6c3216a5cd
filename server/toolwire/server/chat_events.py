"""What a chat sends its client, in domain terms; the servicer turns each into a `ChatResponse`."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from toolwire.server.conversation import Message
from toolwire.server.events import Usage


class FinishReason(enum.Enum):
    """Why a chat ended."""

    STOP = "stop"
    LENGTH = "length"
    MAX_TOOL_ROUNDS = "max_tool_rounds"
    CONTENT_FILTER = "content_filter"
    OTHER = "other"


@dataclass(slots=True, frozen=True)
class ChatStarted:
    """The first event: the chat's id and the model serving it."""

    chat_id: str
    model: str


@dataclass(slots=True, frozen=True)
class TextOut:
    """A piece of the model's text."""

    text: str
    round: int


@dataclass(slots=True, frozen=True)
class ToolRequestOut:
    """A validated tool call for the client to run."""

    tool_call_id: str
    name: str
    arguments_json: str
    round: int
    trace_context: Mapping[str, str] = field(default_factory=dict)
    """W3C trace context of the server's span for this call; empty when not tracing."""


@dataclass(slots=True, frozen=True)
class ToolArgumentsOut:
    """A piece of a tool call's arguments, before the call is complete (opt-in)."""

    tool_call_id: str
    name: str
    arguments_delta: str
    round: int


@dataclass(slots=True, frozen=True)
class ToolAbandonedOut:
    """The server stopped waiting for a tool call's result."""

    tool_call_id: str
    reason: str
    round: int


@dataclass(slots=True, frozen=True)
class ToolRejectedOut:
    """A tool call the server answered itself with an error; it never reached the client."""

    tool_call_id: str
    name: str
    arguments_json: str
    reason: str
    round: int


@dataclass(slots=True, frozen=True)
class UsageOut:
    """Token usage of one model call."""

    round: int
    usage: Usage


@dataclass(slots=True, frozen=True)
class ChatFinished:
    """The chat completed."""

    reason: FinishReason
    text: str
    tools_called: tuple[str, ...]
    chunks_received: int
    rounds: int
    usage: Usage
    duration_seconds: float
    messages: tuple[Message, ...]
    model: str


ChatEvent = (
    ChatStarted | TextOut | ToolRequestOut | ToolArgumentsOut | ToolAbandonedOut | ToolRejectedOut | UsageOut
    | ChatFinished
)  # fmt: skip
"""Everything a chat sends its client."""

"""Domain types of a chat: messages, tools, options. No gRPC here; `convert` maps them to and from proto."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from toolwire.server.events import Reasoning


class Role(enum.Enum):
    """Who wrote a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(slots=True, frozen=True)
class ToolCall:
    """One tool call an assistant message made."""

    tool_call_id: str
    name: str
    arguments_json: str


@dataclass(slots=True, frozen=True)
class Message:
    """One turn of the conversation."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    is_error: bool = False
    reasoning: tuple[Reasoning, ...] = ()
    """The model's reasoning blocks of an assistant turn, in order (sent back to the same API)."""


@dataclass(slots=True, frozen=True)
class ToolDefinition:
    """A tool the model may call, with its parsed JSON Schema."""

    name: str
    description: str
    parameters: dict[str, object]


class ToolChoiceMode(enum.Enum):
    """Whether the model must call tools."""

    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"
    TOOL = "tool"


@dataclass(slots=True, frozen=True)
class ToolChoice:
    """Which tools the model must or must not call."""

    mode: ToolChoiceMode = ToolChoiceMode.AUTO
    tool_name: str = ""


@dataclass(slots=True, frozen=True)
class GenerationOptions:
    """Provider-neutral sampling options; None means the provider's default."""

    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    stop: tuple[str, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool | None = None


@dataclass(slots=True, frozen=True)
class ChatRequest:
    """A validated chat request: everything the loop needs to run it."""

    model: str
    messages: tuple[Message, ...]
    tools: tuple[ToolDefinition, ...]
    max_tool_rounds: int
    tool_timeout_seconds: float
    stream_tool_arguments: bool
    options: GenerationOptions
    text_coalesce_window_seconds: float = 0.0
    """How long text may be held to go out as fewer messages (outbox.py); 0: never held."""


@dataclass(slots=True, frozen=True)
class ToolResult:
    """The client's answer to one tool request."""

    tool_call_id: str
    content: str
    is_error: bool = False


@dataclass(slots=True, frozen=True)
class ModelCall:
    """What one model call is given: the conversation so far, the tools and the options."""

    messages: tuple[Message, ...]
    tools: tuple[ToolDefinition, ...]
    options: GenerationOptions
    round: int
    """The 1-based number of this model call within the chat."""

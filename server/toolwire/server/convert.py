"""Proto ↔ domain conversion, with the checks a request must pass (limits, roles, tool schemas)."""

from __future__ import annotations

import math

from google.protobuf import duration_pb2

from toolwire.server import chat_events as events
from toolwire.server.conversation import (
    ChatRequest,
    GenerationOptions,
    Message,
    Role,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolResult,
)
from toolwire.server.errors import InvalidRequest
from toolwire.server.events import Usage
from toolwire.server.models.base import ModelInfo
from toolwire.server.settings import ServerSettings
from toolwire.server.tools import check_unique_names, parse_tool_definition
from toolwire.v1 import chat_pb2 as pb

_ROLES = {
    pb.ROLE_SYSTEM: Role.SYSTEM,
    pb.ROLE_USER: Role.USER,
    pb.ROLE_ASSISTANT: Role.ASSISTANT,
    pb.ROLE_TOOL: Role.TOOL,
}
_ROLES_OUT = {role: number for number, role in _ROLES.items()}
_TOOL_CHOICES = {
    pb.TOOL_CHOICE_MODE_UNSPECIFIED: ToolChoiceMode.AUTO,
    pb.TOOL_CHOICE_MODE_AUTO: ToolChoiceMode.AUTO,
    pb.TOOL_CHOICE_MODE_NONE: ToolChoiceMode.NONE,
    pb.TOOL_CHOICE_MODE_REQUIRED: ToolChoiceMode.REQUIRED,
    pb.TOOL_CHOICE_MODE_TOOL: ToolChoiceMode.TOOL,
}
_FINISH_REASONS = {
    events.FinishReason.STOP: pb.FINISH_REASON_STOP,
    events.FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
    events.FinishReason.MAX_TOOL_ROUNDS: pb.FINISH_REASON_MAX_TOOL_ROUNDS,
    events.FinishReason.CONTENT_FILTER: pb.FINISH_REASON_CONTENT_FILTER,
    events.FinishReason.OTHER: pb.FINISH_REASON_OTHER,
}


def chat_request_from_proto(start: pb.ChatStart, settings: ServerSettings) -> ChatRequest:
    """Converts and checks a ChatStart; raises InvalidRequest naming the field to fix."""
    limits = settings.limits
    if len(start.messages) > limits.max_messages:
        raise InvalidRequest(
            f"start.messages has {len(start.messages)} messages; the limit is {limits.max_messages}: "
            "trim or summarise older history"
        )
    if not start.messages:
        raise InvalidRequest("start.messages is empty: send at least one message (usually a user message)")
    if len(start.tools) > limits.max_tools:
        raise InvalidRequest(f"start.tools has {len(start.tools)} tools; the limit is {limits.max_tools}")
    messages = tuple(
        _message_from_proto(position, message) for position, message in enumerate(start.messages)
    )
    _check_tool_messages(messages)
    tools = []
    for position, tool in enumerate(start.tools):
        if len(tool.parameters_json_schema.encode()) > limits.max_tool_schema_bytes:
            limit = limits.max_tool_schema_bytes
            raise InvalidRequest(f"tools[{position}].parameters_json_schema is larger than {limit} bytes")
        tools.append(
            parse_tool_definition(position, tool.name, tool.description, tool.parameters_json_schema)
        )
    check_unique_names(tools)
    options = _options_from_proto(start, {tool.name for tool in tools})
    return ChatRequest(
        model=start.model.strip(),
        messages=messages,
        tools=tuple(tools),
        max_tool_rounds=_max_tool_rounds(start.max_tool_rounds, settings),
        tool_timeout_seconds=_tool_timeout(start, settings),
        stream_tool_arguments=start.stream_tool_arguments,
        options=options,
        text_coalesce_window_seconds=_text_coalesce_window(start, settings),
    )


def _message_from_proto(position: int, message: pb.Message) -> Message:
    role = _ROLES.get(message.role)
    if role is None:
        raise InvalidRequest(
            f"messages[{position}].role is not set: use ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL"
        )
    if role is Role.TOOL and not message.tool_call_id:
        raise InvalidRequest(
            f"messages[{position}] has ROLE_TOOL but no tool_call_id: name the call it answers"
        )
    if message.tool_calls and role is not Role.ASSISTANT:
        raise InvalidRequest(
            f"messages[{position}] has tool_calls but only ROLE_ASSISTANT messages may carry them"
        )
    tool_calls = tuple(
        ToolCall(call.id, call.name, call.arguments_json or "{}") for call in message.tool_calls
    )
    for call in tool_calls:
        if not call.tool_call_id or not call.name:
            raise InvalidRequest(f"messages[{position}].tool_calls: every tool call needs an id and a name")
    return Message(role, message.content, tool_calls, message.tool_call_id, message.is_error)


def _check_tool_messages(messages: tuple[Message, ...]) -> None:
    """Every tool message must answer a call made by an earlier assistant message."""
    called: set[str] = set()
    for position, message in enumerate(messages):
        called.update(call.tool_call_id for call in message.tool_calls)
        if message.role is Role.TOOL and message.tool_call_id not in called:
            raise InvalidRequest(
                f"messages[{position}] answers tool_call_id {message.tool_call_id!r}, which no earlier "
                "assistant message called"
            )


def _options_from_proto(start: pb.ChatStart, tool_names: set[str]) -> GenerationOptions:
    mode = _TOOL_CHOICES.get(start.tool_choice.mode)
    if mode is None:
        raise InvalidRequest(f"start.tool_choice.mode {start.tool_choice.mode} is not a known ToolChoiceMode")
    if mode is ToolChoiceMode.TOOL and start.tool_choice.tool_name not in tool_names:
        raise InvalidRequest(
            f"start.tool_choice names tool {start.tool_choice.tool_name!r}, which is not among start.tools"
        )
    if start.max_output_tokens < 0:
        raise InvalidRequest("start.max_output_tokens must not be negative (0 means the provider default)")
    return GenerationOptions(
        temperature=_finite(start, "temperature"),
        top_p=_finite(start, "top_p"),
        max_output_tokens=start.max_output_tokens or None,
        stop=tuple(start.stop),
        tool_choice=ToolChoice(mode, start.tool_choice.tool_name if mode is ToolChoiceMode.TOOL else ""),
        parallel_tool_calls=start.parallel_tool_calls if start.HasField("parallel_tool_calls") else None,
    )


def _finite(start: pb.ChatStart, field: str) -> float | None:
    """An optional number of the start; None when unset. NaN and infinities are refused: JSON has
    neither, and a provider would get `null` (its default) in their place."""
    if not start.HasField(field):
        return None
    value: float = getattr(start, field)
    if not math.isfinite(value):
        raise InvalidRequest(f"start.{field} is {value}: use a finite number, or leave it unset")
    return value


def _seconds(duration: duration_pb2.Duration) -> float:
    """A Duration in seconds, exact to the nanosecond and for any value the type holds (`ToTimedelta`
    overflows past ~2.7 million years and rounds to microseconds)."""
    return duration.seconds + duration.nanos / 1e9


def _max_tool_rounds(requested: int, settings: ServerSettings) -> int:
    limit = settings.limits.max_tool_rounds
    if requested < 0 or requested > limit:
        raise InvalidRequest(f"start.max_tool_rounds is {requested}; use 0 (server default) to {limit}")
    return requested or settings.default_max_tool_rounds


def _tool_timeout(start: pb.ChatStart, settings: ServerSettings) -> float:
    if not start.HasField("tool_timeout"):
        return settings.default_tool_timeout_seconds
    seconds = _seconds(start.tool_timeout)
    limit = settings.limits.max_tool_timeout_seconds
    if seconds <= 0 or seconds > limit:
        raise InvalidRequest(f"start.tool_timeout is {seconds:g} s; use more than 0 and at most {limit:g} s")
    return seconds


def _text_coalesce_window(start: pb.ChatStart, settings: ServerSettings) -> float:
    """The window in seconds; unset is 0 (text is never held)."""
    seconds = _seconds(start.text_coalesce_window)
    limit = settings.limits.max_text_coalesce_window_seconds
    if seconds < 0 or seconds > limit:
        raise InvalidRequest(
            f"start.text_coalesce_window is {seconds:g} s; use 0 (unset: no window) to {limit:g} s"
        )
    return seconds


def tool_result_from_proto(result: pb.ToolResult) -> ToolResult:
    """Converts a ToolResult."""
    if not result.tool_call_id:
        raise InvalidRequest("tool_result.tool_call_id is empty: copy it from the ToolRequest you answer")
    return ToolResult(result.tool_call_id, result.content, result.is_error)


def event_to_proto(event: events.ChatEvent) -> pb.ChatResponse:
    """Converts one chat event to the ChatResponse that carries it."""
    if type(event) is events.TextOut:  # the hot path: most events of a chat, skip the match
        # Set in place: a TextDelta made apart and passed in is copied into the response, which
        # costs ~40% more (callgrind, docs/performance.md).
        response = pb.ChatResponse()
        text_delta = response.text_delta
        text_delta.text = event.text
        text_delta.round = event.round
        return response
    match event:
        case events.TextOut(text, model_round):
            return pb.ChatResponse(text_delta=pb.TextDelta(text=text, round=model_round))
        case events.ToolRequestOut(tool_call_id, name, arguments_json, model_round, trace_context):
            return pb.ChatResponse(
                tool_request=pb.ToolRequest(
                    tool_call_id=tool_call_id,
                    name=name,
                    arguments_json=arguments_json,
                    round=model_round,
                    trace_context=trace_context,
                )
            )
        case events.ToolArgumentsOut(tool_call_id, name, delta, model_round):
            return pb.ChatResponse(
                tool_arguments_delta=pb.ToolArgumentsDelta(
                    tool_call_id=tool_call_id, name=name, arguments_delta=delta, round=model_round
                )
            )
        case events.ToolAbandonedOut(tool_call_id, reason, model_round):
            return pb.ChatResponse(
                tool_call_abandoned=pb.ToolCallAbandoned(
                    tool_call_id=tool_call_id, reason=reason, round=model_round
                )
            )
        case events.ToolRejectedOut(tool_call_id, name, arguments_json, reason, model_round):
            return pb.ChatResponse(
                tool_call_rejected=pb.ToolCallRejected(
                    tool_call_id=tool_call_id,
                    name=name,
                    arguments_json=arguments_json,
                    reason=reason,
                    round=model_round,
                )
            )
        case events.UsageOut(model_round, usage):
            return pb.ChatResponse(usage=pb.UsageUpdate(round=model_round, usage=_usage_to_proto(usage)))
        case events.ChatStarted(chat_id, model):
            return pb.ChatResponse(started=pb.ChatStarted(chat_id=chat_id, model=model))
        case events.ChatFinished():
            return pb.ChatResponse(finish=_finish_to_proto(event))
    raise TypeError(f"no proto for chat event {event!r}")


def _finish_to_proto(finished: events.ChatFinished) -> pb.ChatFinish:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(finished.duration_seconds * 1e9))
    return pb.ChatFinish(
        reason=_FINISH_REASONS[finished.reason],
        text=finished.text,
        tools_called=finished.tools_called,
        chunks_received=finished.chunks_received,
        rounds=finished.rounds,
        usage=_usage_to_proto(finished.usage),
        duration=duration,
        messages=[message_to_proto(message) for message in finished.messages],
        model=finished.model,
    )


def _usage_to_proto(usage: Usage) -> pb.Usage:
    return pb.Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)


def message_to_proto(message: Message) -> pb.Message:
    """Converts a domain message to proto."""
    return pb.Message(
        role=_ROLES_OUT[message.role],
        content=message.content,
        tool_calls=[
            pb.ToolCall(id=call.tool_call_id, name=call.name, arguments_json=call.arguments_json)
            for call in message.tool_calls
        ],
        tool_call_id=message.tool_call_id,
        is_error=message.is_error,
    )


def model_info_to_proto(model: ModelInfo) -> pb.ModelInfo:
    """Converts one ListModels entry."""
    return pb.ModelInfo(id=model.model_id, provider=model.provider, description=model.description)

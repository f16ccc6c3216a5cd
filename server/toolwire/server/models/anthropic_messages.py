"""The Anthropic Messages adapter.

The same shape as the OpenAI adapter: `request_body` maps a `ModelCall` to the wire request, the
provider's transport sends it (models/transport.py), and the raw SSE body is mapped event by event
to internal events. Anthropic's wire specifics stay here: the system prompt as a parameter, tool
results as `tool_result` blocks inside a user message, strict role alternation, thinking blocks
sent back with their signatures.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from toolwire.server.conversation import Message, ModelCall, Role, ToolChoiceMode
from toolwire.server.events import (
    ModelEvent,
    Reasoning,
    StopReason,
    TextDelta,
    ToolCallEnd,
    ToolCallFragment,
    TurnEnd,
    Usage,
)
from toolwire.server.models import provider_errors
from toolwire.server.models.transport import ProviderTransport
from toolwire.server.models.wire import count, parse_payload, sse_payloads, string

WIRE_API = "anthropic"
"""The `Reasoning.provider` of thinking blocks this adapter produces and sends back."""

DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires an output limit; this one applies when the request sets none."""

_STOP_REASONS = {
    "end_turn": StopReason.STOP,
    "stop_sequence": StopReason.STOP,
    "tool_use": StopReason.TOOL_CALLS,
    "max_tokens": StopReason.LENGTH,
    "model_context_window_exceeded": StopReason.LENGTH,
    "refusal": StopReason.CONTENT_FILTER,
}


@dataclass(slots=True, frozen=True)
class AnthropicOptions:
    """Per-provider settings of the Anthropic adapter."""

    default_max_tokens: int = DEFAULT_MAX_TOKENS
    """`max_tokens` when the request sets no `max_output_tokens`."""
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    """Fields merged into every request body, e.g. `{"thinking": {"type": "enabled", ...}}`."""
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    """Headers added to every request, e.g. `anthropic-beta` (never logged)."""


class AnthropicModel:
    """One Claude model behind the Messages API."""

    def __init__(self, transport: ProviderTransport, model_name: str, options: AnthropicOptions) -> None:
        self._transport = transport
        self._provider = transport.endpoint.provider
        self._model_name = model_name
        self._options = options

    @property
    def model_id(self) -> str:
        return f"{self._provider}/{self._model_name}"

    async def stream(self, call: ModelCall) -> AsyncGenerator[ModelEvent, None]:
        body = request_body(call, self._model_name, self._options)
        transport = self._transport
        async with transport.post_stream("/v1/messages", body, self._options.extra_headers) as raw:
            events = _events(raw, self._provider, transport.endpoint.secrets)
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event


# --- request ------------------------------------------------------------------------------------


def request_body(call: ModelCall, model_name: str, options: AnthropicOptions) -> dict[str, Any]:
    """The Messages request for one model call."""
    generation = call.options
    body: dict[str, Any] = {
        "model": model_name,
        "max_tokens": generation.max_output_tokens or options.default_max_tokens,
        "messages": wire_messages(call.messages),
        "stream": True,
    }
    system = "\n\n".join(message.content for message in call.messages if message.role is Role.SYSTEM)
    if system:
        body["system"] = system
    if call.tools:
        body["tools"] = [
            {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
            for tool in call.tools
        ]
        body["tool_choice"] = _wire_tool_choice(call)
    if generation.stop:
        body["stop_sequences"] = list(generation.stop)
    # Sent when set; the API answers 400 for a model that refuses them.
    if generation.temperature is not None:
        body["temperature"] = generation.temperature
    if generation.top_p is not None:
        body["top_p"] = generation.top_p
    body.update(options.extra_body)
    return body


def _wire_tool_choice(call: ModelCall) -> dict[str, Any]:
    choice = call.options.tool_choice
    wire: dict[str, Any] = {
        ToolChoiceMode.AUTO: {"type": "auto"},
        ToolChoiceMode.NONE: {"type": "none"},
        ToolChoiceMode.REQUIRED: {"type": "any"},
        ToolChoiceMode.TOOL: {"type": "tool", "name": choice.tool_name},
    }[choice.mode]
    if call.options.parallel_tool_calls is False and choice.mode is not ToolChoiceMode.NONE:
        wire["disable_parallel_tool_use"] = True
    return wire


def wire_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The conversation as alternating user/assistant turns of content blocks. Tool results become
    `tool_result` blocks of a user turn; consecutive turns of one role are merged into one."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role is Role.SYSTEM:
            continue  # sent as the `system` parameter
        role = "assistant" if message.role is Role.ASSISTANT else "user"
        blocks = _assistant_blocks(message) if role == "assistant" else _user_blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _user_blocks(message: Message) -> list[dict[str, Any]]:
    if message.role is Role.TOOL:
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id,
            "content": message.content,
        }
        if message.is_error:
            block["is_error"] = True
        return [block]
    return [{"type": "text", "text": message.content}] if message.content else []


def _assistant_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in message.reasoning:  # thinking first, as the API requires, and only our own
        if part.provider != WIRE_API:
            continue
        if part.redacted_data is not None:
            blocks.append({"type": "redacted_thinking", "data": part.redacted_data})
        elif part.signature:
            blocks.append({"type": "thinking", "thinking": part.text, "signature": part.signature})
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.tool_call_id,
                "name": call.name,
                "input": _input(call.arguments_json),
            }
        )
    return blocks


def _input(arguments_json: str) -> dict[str, Any]:
    """A call's input object; a call whose arguments were not an object (and was refused) sends {}."""
    try:
        value = json.loads(arguments_json) if arguments_json.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- stream -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    """A thinking block being received."""

    kind: str
    text: list[str] = field(default_factory=list)
    signature: list[str] = field(default_factory=list)
    redacted_data: str | None = None


@dataclass(slots=True)
class _StreamState:
    """What the event mappers remember across events of one stream."""

    tool_blocks: set[int] = field(default_factory=set)
    thinking_blocks: dict[int, _Block] = field(default_factory=dict)
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None
    stopped: bool = False


async def _events(
    body: AsyncIterator[bytes], provider: str, secrets: tuple[str, ...]
) -> AsyncGenerator[ModelEvent, None]:
    """Maps each event of the SSE body; a stream cut before its stop reason is an error."""
    state = _StreamState()
    async with contextlib.aclosing(sse_payloads(body)) as payloads:
        async for data in payloads:
            for event in _sse_events(data, state, provider, secrets):
                yield event
            if state.stopped:
                return
    if state.stop_reason is None:
        raise provider_errors.error_for_connection(
            provider=provider, what="the stream ended before message_stop"
        )
    yield from_message_stop(state)  # a stop reason came but message_stop did not: end anyway
    yield TurnEnd(_STOP_REASONS.get(state.stop_reason, StopReason.OTHER), state.stop_reason)


def _sse_events(
    data: bytes, state: _StreamState, provider: str, secrets: tuple[str, ...]
) -> Iterator[ModelEvent]:
    if state.stopped:
        return
    try:
        event = parse_payload(data)
    except ValueError:
        raise provider_errors.error_for_stream_event(
            {"type": "api_error", "message": "a stream event is not valid JSON"}, provider=provider
        ) from None
    if not isinstance(event, dict):
        return
    mapper = _MAPPERS.get(str(event.get("type")))
    if mapper is not None:
        yield from mapper(event, state, provider, secrets)


def _message_start(
    event: dict[str, Any], state: _StreamState, provider: str, secrets: tuple[str, ...]
) -> Iterator[ModelEvent]:
    message = event.get("message")
    usage = message.get("usage") if isinstance(message, dict) else None
    if isinstance(usage, dict):
        counts = [
            usage.get(name)
            for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        ]
        if isinstance(counts[0], int):
            state.input_tokens = sum(count for count in counts if isinstance(count, int))
        state.output_tokens = count(usage.get("output_tokens"))
    return iter(())


def _block_start(
    event: dict[str, Any], state: _StreamState, provider: str, secrets: tuple[str, ...]
) -> Iterator[ModelEvent]:
    index = event.get("index")
    block = event.get("content_block")
    if not isinstance(index, int) or not isinstance(block, dict):
        return
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
        yield TextDelta(block["text"])
    elif kind == "tool_use":
        state.tool_blocks.add(index)
        initial = block.get("input")
        arguments = json.dumps(initial) if isinstance(initial, dict) and initial else None
        yield ToolCallFragment(index, string(block.get("id")), string(block.get("name")), arguments)
    elif kind in ("thinking", "redacted_thinking"):
        thinking = _Block(kind, redacted_data=string(block.get("data")))
        for name, parts in (("thinking", thinking.text), ("signature", thinking.signature)):
            if isinstance(block.get(name), str) and block[name]:
                parts.append(block[name])
        state.thinking_blocks[index] = thinking


def _block_delta(
    event: dict[str, Any], state: _StreamState, provider: str, secrets: tuple[str, ...]
) -> Iterator[ModelEvent]:
    index = event.get("index")
    delta = event.get("delta")
    if not isinstance(delta, dict):
        return
    kind = delta.get("type")
    if kind == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
        yield TextDelta(delta["text"])
    elif kind == "input_json_delta" and isinstance(index, int):
        yield ToolCallFragment(index, arguments=string(delta.get("partial_json")))
    elif (
        kind in ("thinking_delta", "signature_delta")
        and isinstance(index, int)
        and index in state.thinking_blocks
    ):
        block = state.thinking_blocks[index]
        name = "thinking" if kind == "thinking_delta" else "signature"
        (block.text if name == "thinking" else block.signature).append(string(delta.get(name)) or "")


def _block_stop(
    event: dict[str, Any], state: _StreamState, provider: str, secrets: tuple[str, ...]
) -> Iterator[ModelEvent]:
    index = event.get("index")
    if not isinstance(index, int):
        return
    if index in state.tool_blocks:
        yield ToolCallEnd(index)
    thinking = state.thinking_blocks.pop(index, None)
    if thinking is not None:
        yield Reasoning(
            WIRE_API,
            "".join(thinking.text),
            "".join(thinking.signature) or None,
            thinking.redacted_data if thinking.kind == "redacted_thinking" else None,
        )


def _message_delta(
    event: dict[str, Any], state: _StreamState, provider: str, secrets: tuple[str, ...]
) -> Iterator[ModelEvent]:
    delta = event.get("delta")
    if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
        state.stop_reason = delta["stop_reason"]
    usage = event.get("usage")
    if isinstance(usage, dict):
        output_tokens = count(usage.get("output_tokens"))
        if output_tokens is not None:
            state.output_tokens = output_tokens
    return iter(())


def _message_stop(
    event: dict[str, Any], state: _StreamState, provider: str, secrets: tuple[str, ...]
) -> Iterator[ModelEvent]:
    state.stopped = True
    reason = state.stop_reason or "end_turn"
    yield from_message_stop(state)
    yield TurnEnd(_STOP_REASONS.get(reason, StopReason.OTHER), reason)


def _error(
    event: dict[str, Any], state: _StreamState, provider: str, secrets: tuple[str, ...]
) -> Iterator[ModelEvent]:
    raise provider_errors.error_for_stream_event(event.get("error"), provider=provider, secrets=secrets)


def from_message_stop(state: _StreamState) -> Usage:
    """The usage of the whole message: input counted at the start, output at the last delta."""
    return Usage(state.input_tokens, state.output_tokens)


_MAPPERS = {
    "message_start": _message_start,
    "content_block_start": _block_start,
    "content_block_delta": _block_delta,
    "content_block_stop": _block_stop,
    "message_delta": _message_delta,
    "message_stop": _message_stop,
    "error": _error,
}
"""Event type → mapper. `ping` and unknown future event types are ignored."""

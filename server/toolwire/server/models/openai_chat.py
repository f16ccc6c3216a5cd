"""The OpenAI Chat Completions adapter: OpenAI itself and every OpenAI-compatible server.

One shape, shared with the Anthropic adapter: `request_body` maps a `ModelCall` to the wire request,
the provider's transport sends it (models/transport.py: the SDK client's URL and headers over
aiohttp, errors mapped in one place), and the raw SSE body is decoded
here and mapped chunk by chunk to internal events by small named functions. Compatible servers
differ only by `OpenAIQuirks` (configuration), never by code paths of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from toolwire.server.conversation import Message, ModelCall, Role, ToolChoiceMode, ToolDefinition
from toolwire.server.events import (
    ModelEvent,
    Reasoning,
    StopReason,
    TextDelta,
    ToolCallFragment,
    TurnEnd,
    Usage,
)
from toolwire.server.models import provider_errors
from toolwire.server.models.sse import SSEDecoder
from toolwire.server.models.transport import ProviderTransport
from toolwire.server.models.wire import count, parse_payload, string

WIRE_API = "openai"
"""The `Reasoning.provider` of reasoning this adapter produces and accepts back."""

_STOP_REASONS = {
    "stop": StopReason.STOP,
    "tool_calls": StopReason.TOOL_CALLS,
    "function_call": StopReason.TOOL_CALLS,
    "length": StopReason.LENGTH,
    "content_filter": StopReason.CONTENT_FILTER,
}


@dataclass(slots=True, frozen=True)
class OpenAIQuirks:
    """What an OpenAI-compatible server does differently; the defaults are OpenAI's own API."""

    include_usage: bool = True
    """Send `stream_options.include_usage` (some servers reject the option)."""
    max_tokens_field: str = "max_completion_tokens"
    """The name of the output-limit parameter (`max_tokens` on most compatible servers)."""
    parallel_tool_calls: bool = True
    """Whether the server accepts the `parallel_tool_calls` parameter."""
    system_role: str = "system"
    """The role of system messages (`developer` for OpenAI's reasoning models if you prefer)."""
    reasoning_fields: tuple[str, ...] = ("reasoning_content", "reasoning")
    """Delta fields that carry reasoning text (DeepSeek/vLLM `reasoning_content`, Groq `reasoning`)."""
    send_reasoning_back: bool = False
    """Send an assistant turn's reasoning back as `reasoning_content` (DeepSeek thinking with tools)."""
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    """Fields merged into every request body (server-specific options)."""
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    """Headers added to every request (never logged)."""


class OpenAIChatModel:
    """One model behind a Chat Completions endpoint."""

    def __init__(self, transport: ProviderTransport, model_name: str, quirks: OpenAIQuirks) -> None:
        self._transport = transport
        self._provider = transport.endpoint.provider
        self._model_name = model_name
        self._quirks = quirks

    @property
    def model_id(self) -> str:
        return f"{self._provider}/{self._model_name}"

    async def stream(self, call: ModelCall) -> AsyncGenerator[ModelEvent, None]:
        body = request_body(call, self._model_name, self._quirks)
        transport = self._transport
        async with transport.post_stream("/chat/completions", body, self._quirks.extra_headers) as raw:
            state = _StreamState(secrets=transport.endpoint.secrets)
            events = _events(raw, state, self._provider, self._quirks)
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event


# --- request ------------------------------------------------------------------------------------


def request_body(call: ModelCall, model_name: str, quirks: OpenAIQuirks) -> dict[str, Any]:
    """The Chat Completions request for one model call."""
    body: dict[str, Any] = {
        "model": model_name,
        "messages": [wire for message in call.messages for wire in _wire_messages(message, quirks)],
        "stream": True,
    }
    if quirks.include_usage:
        body["stream_options"] = {"include_usage": True}
    if call.tools:
        body["tools"] = [_wire_tool(tool) for tool in call.tools]
        body["tool_choice"] = _wire_tool_choice(call)
        if quirks.parallel_tool_calls and call.options.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = call.options.parallel_tool_calls
    options = call.options
    if options.temperature is not None:
        body["temperature"] = options.temperature
    if options.top_p is not None:
        body["top_p"] = options.top_p
    if options.max_output_tokens is not None:
        body[quirks.max_tokens_field] = options.max_output_tokens
    if options.stop:
        body["stop"] = list(options.stop)
    body.update(quirks.extra_body)
    return body


def _wire_messages(message: Message, quirks: OpenAIQuirks) -> Iterator[dict[str, Any]]:
    if message.role is Role.SYSTEM:
        yield {"role": quirks.system_role, "content": message.content}
    elif message.role is Role.USER:
        yield {"role": "user", "content": message.content}
    elif message.role is Role.TOOL:
        content = message.content
        if message.is_error and not content.lower().startswith("error"):
            content = f"Error: {content}"  # the wire has no error flag: say it in the content
        yield {"role": "tool", "tool_call_id": message.tool_call_id, "content": content}
    else:
        yield _wire_assistant(message, quirks)


def _wire_assistant(message: Message, quirks: OpenAIQuirks) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": "assistant", "content": message.content or None}
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.tool_call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in message.tool_calls
        ]
    if quirks.send_reasoning_back:
        reasoning = "".join(part.text for part in message.reasoning if part.provider == WIRE_API)
        if reasoning:
            wire["reasoning_content"] = reasoning
    return wire


def _wire_tool(tool: ToolDefinition) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _wire_tool_choice(call: ModelCall) -> object:
    choice = call.options.tool_choice
    if choice.mode is ToolChoiceMode.TOOL:
        return {"type": "function", "function": {"name": choice.tool_name}}
    return choice.mode.value  # "auto", "none", "required"


# --- stream -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _StreamState:
    """What the chunk mappers remember across chunks of one stream."""

    secrets: tuple[str, ...] = ()
    """Redacted from any error message the stream carries."""
    reasoning: list[str] = field(default_factory=list)
    usage: Usage | None = None
    stop_reason: StopReason | None = None
    saw_tool_call: bool = False
    refused: bool = False
    done: bool = False


async def _events(
    body: AsyncIterator[bytes], state: _StreamState, provider: str, quirks: OpenAIQuirks
) -> AsyncGenerator[ModelEvent, None]:
    """Maps each chunk of the SSE body; ends with Reasoning, TurnEnd and Usage events.

    The hot path of the relay: one generator for the whole body (the SSE decoder is called, not
    iterated), and a chunk that carries only text is mapped by `_text_only` without the general
    mappers' generators (~1/3 of our CPU per chunk; `python -m bench.micro`).
    """
    decoder = SSEDecoder()
    reads = aiter(body)
    while not state.done:
        try:
            raw = await anext(reads)
        except StopAsyncIteration:
            payloads, last = decoder.close(), True
        else:
            payloads, last = decoder.feed(raw), False
        for payload in payloads:
            chunk = _chunk(payload, state, provider)
            if chunk is None:
                if state.done:
                    break
                continue
            text = _text_only(chunk)
            if text is not None:
                if text:
                    yield TextDelta(text)
                continue
            for event in _chunk_events(chunk, state, quirks):
                yield event
        if last:
            break
    for event in _ending(state, provider):
        yield event


def _chunk(data: bytes, state: _StreamState, provider: str) -> dict[str, Any] | None:
    """One SSE payload parsed: a chunk, or None for `[DONE]` (which sets `state.done`) and non-objects."""
    if data.strip() == b"[DONE]":
        state.done = True
        return None
    try:
        chunk = parse_payload(data)
    except ValueError:
        raise provider_errors.error_for_stream_event(
            {"type": "server_error", "message": "a stream chunk is not valid JSON"}, provider=provider
        ) from None
    if not isinstance(chunk, dict):
        return None
    if chunk.get("error"):
        raise provider_errors.error_for_stream_event(chunk["error"], provider=provider, secrets=state.secrets)
    return chunk


def _text_only(chunk: dict[str, Any]) -> str | None:
    """The text of a chunk that carries nothing else (most chunks of a stream), or None when the
    chunk needs the general mapping. Exactly what `_chunk_events` would make of such a chunk: no
    usage, one choice (index 0), no finish reason, a delta whose only non-null field besides
    `role` is a string `content`."""
    if chunk.get("usage") is not None:
        return None
    choices = chunk.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if (
        type(choice) is not dict
        or choice.get("finish_reason") is not None
        or choice.get("index", 0) not in (0, None)
    ):
        return None
    delta = choice.get("delta")
    if type(delta) is not dict:
        return None
    text = None
    for key, value in delta.items():
        if key == "content":
            if type(value) is not str:
                return None
            text = value
        elif value is not None and key != "role":
            return None
    return text


def _chunk_events(chunk: dict[str, Any], state: _StreamState, quirks: OpenAIQuirks) -> Iterator[ModelEvent]:
    """Maps one `chat.completion.chunk`: usage, then the first choice's delta and finish reason."""
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        state.usage = _usage(usage)
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("index", 0) not in (0, None):
            continue  # n > 1 is not supported; other choices are ignored
        delta = choice.get("delta")
        if isinstance(delta, dict):
            yield from _delta_events(delta, state, quirks)
        finish_reason = choice.get("finish_reason")
        if isinstance(finish_reason, str) and finish_reason and state.stop_reason is None:
            state.stop_reason = _STOP_REASONS.get(finish_reason, StopReason.OTHER)
            yield from _turn_end(state, finish_reason)


def _delta_events(delta: dict[str, Any], state: _StreamState, quirks: OpenAIQuirks) -> Iterator[ModelEvent]:
    for name in quirks.reasoning_fields:
        reasoning = delta.get(name)
        if isinstance(reasoning, str) and reasoning:
            state.reasoning.append(reasoning)
    content = delta.get("content")
    if isinstance(content, str) and content:
        yield TextDelta(content)
    refusal = delta.get("refusal")
    if isinstance(refusal, str) and refusal:
        state.refused = True
        yield TextDelta(refusal)
    tool_calls = delta.get("tool_calls")
    if isinstance(tool_calls, list):
        for tool_call in tool_calls:
            if isinstance(tool_call, dict):
                state.saw_tool_call = True
                yield _fragment(tool_call)


def _fragment(tool_call: dict[str, Any]) -> ToolCallFragment:
    function = tool_call.get("function")
    if not isinstance(function, dict):
        function = {}
    return ToolCallFragment(
        key=_str_or_int(tool_call.get("index")),
        tool_call_id=string(tool_call.get("id")),
        name=string(function.get("name")),
        arguments=string(function.get("arguments")),
    )


def _turn_end(state: _StreamState, provider_reason: str) -> Iterator[ModelEvent]:
    if state.reasoning:
        yield Reasoning(WIRE_API, "".join(state.reasoning))
        state.reasoning = []
    reason = state.stop_reason or StopReason.STOP
    if state.refused and reason is StopReason.STOP:
        reason = StopReason.CONTENT_FILTER
    yield TurnEnd(reason, provider_reason)


def _ending(state: _StreamState, provider: str) -> Iterator[ModelEvent]:
    """After the body: the turn end if no finish reason came (some servers send none), and usage."""
    if state.stop_reason is None:
        if not state.done:
            raise provider_errors.error_for_connection(
                provider=provider, what="the stream ended without a finish reason or [DONE]"
            )
        state.stop_reason = StopReason.TOOL_CALLS if state.saw_tool_call else StopReason.STOP
        yield from _turn_end(state, "")
    if state.usage is not None:
        yield state.usage


def _usage(usage: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=count(usage.get("prompt_tokens")),
        output_tokens=count(usage.get("completion_tokens")),
    )


def _str_or_int(value: object) -> int | str | None:
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None

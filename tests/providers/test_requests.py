"""What goes on the wire: each call is sent through the real SDK to the fake provider, and the request
it received (path, headers, JSON body) is checked against the provider's API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import pytest

from tests.fakes.provider import FakeProvider, RecordedRequest, Reply
from tests.providers.conftest import ANTHROPIC_KEY, OPENAI_KEY, WEATHER, model_call, provider_settings
from toolwire.server.conversation import (
    GenerationOptions,
    Message,
    Role,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
)
from toolwire.server.errors import ToolwireError
from toolwire.server.events import Reasoning
from toolwire.server.models.anthropic_messages import AnthropicOptions
from toolwire.server.models.config import PRESETS
from toolwire.server.models.openai_chat import OpenAIQuirks
from toolwire.server.models.remote import RemoteProvider

FIXTURES = Path(__file__).parent / "fixtures"
REPLIES = {
    "openai": FIXTURES / "openai" / "text-only-usage.sse",
    "anthropic": FIXTURES / "anthropic" / "text-only.sse",
}

CONVERSATION = (
    Message(Role.SYSTEM, "You are terse."),
    Message(Role.USER, "Weather in Paris and Rome?"),
    Message(
        Role.ASSISTANT,
        "Checking both.",
        tool_calls=(
            ToolCall("call_1", "get_weather", '{"location": "Paris"}'),
            ToolCall("call_2", "get_weather", '{"location": "Rome"}'),
        ),
    ),
    Message(Role.TOOL, "18 C, sunny", tool_call_id="call_1"),
    Message(Role.TOOL, "weather service down", tool_call_id="call_2", is_error=True),
    Message(Role.USER, "And tomorrow?"),
)


async def sent_request(provider: RemoteProvider, fake_provider: FakeProvider, call) -> RecordedRequest:
    """Streams `call` to completion against a queued fixture reply; the one request the fake received."""
    fake_provider.enqueue(Reply(body=REPLIES[provider.settings.wire_api].read_bytes()))
    async with contextlib.aclosing(provider.resolve("test-model").stream(call)) as events:
        async for _event in events:
            pass
    assert len(fake_provider.requests) == 1
    return fake_provider.requests[0]


@contextlib.asynccontextmanager
async def configured(fake_provider: FakeProvider, wire_api: str, **changes) -> AsyncIterator[RemoteProvider]:
    """A provider on the fake with changed settings (quirks, anthropic options)."""
    provider = RemoteProvider(provider_settings(wire_api, fake_provider.url, **changes))
    try:
        yield provider
    finally:
        await provider.close()


async def openai_body(
    fake_provider: FakeProvider, call, quirks: OpenAIQuirks | None = None
) -> dict[str, Any]:
    async with configured(fake_provider, "openai", quirks=quirks or OpenAIQuirks()) as provider:
        return (await sent_request(provider, fake_provider, call)).json()


def openai_tool_call(tool_call_id: str, location: str) -> dict[str, Any]:
    function = {"name": "get_weather", "arguments": f'{{"location": "{location}"}}'}
    return {"id": tool_call_id, "type": "function", "function": function}


def tool_use(tool_use_id: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_use_id, "name": "get_weather", "input": tool_input}


# --- OpenAI Chat Completions ---------------------------------------------------------------------


async def test_openai_request_path_stream_and_headers(openai_provider, fake_provider):
    request = await sent_request(openai_provider, fake_provider, model_call())
    body = request.json()
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert body["model"] == "test-model"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert request.headers["accept-encoding"] == "identity"
    assert request.headers.get("authorization") == "Bearer " + OPENAI_KEY, "wrong authorization header"
    function = {"name": WEATHER.name, "description": WEATHER.description, "parameters": WEATHER.parameters}
    assert body["tools"] == [{"type": "function", "function": function}]
    assert body["tool_choice"] == "auto"
    unset = ("parallel_tool_calls", "temperature", "top_p", "stop", "max_completion_tokens", "max_tokens")
    for key in unset:
        assert key not in body, key


async def test_openai_conversation_messages(openai_provider, fake_provider):
    body = (await sent_request(openai_provider, fake_provider, model_call(*CONVERSATION))).json()
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [openai_tool_call("call_1", "Paris"), openai_tool_call("call_2", "Rome")],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: weather service down"},
        {"role": "user", "content": "And tomorrow?"},
    ]


async def test_openai_error_result_already_saying_error_is_not_prefixed_twice(openai_provider, fake_provider):
    call = model_call(
        Message(Role.USER, "Weather?"),
        Message(Role.ASSISTANT, tool_calls=(ToolCall("call_1", "get_weather", "{}"),)),
        Message(Role.TOOL, "Error: location is required", tool_call_id="call_1", is_error=True),
    )
    messages = (await sent_request(openai_provider, fake_provider, call)).json()["messages"]
    assert messages[1]["content"] is None  # an assistant turn without text sends content: null
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "Error: location is required"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (ToolChoice(ToolChoiceMode.AUTO), "auto"),
        (ToolChoice(ToolChoiceMode.NONE), "none"),
        (ToolChoice(ToolChoiceMode.REQUIRED), "required"),
        (
            ToolChoice(ToolChoiceMode.TOOL, "get_weather"),
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
async def test_openai_tool_choice(openai_provider, fake_provider, choice, expected):
    call = model_call(options=GenerationOptions(tool_choice=choice))
    assert (await sent_request(openai_provider, fake_provider, call)).json()["tool_choice"] == expected


@pytest.mark.parametrize(
    ("quirk_allows", "requested", "expected"),
    [(True, None, "absent"), (True, False, False), (True, True, True), (False, False, "absent")],
)
async def test_openai_parallel_tool_calls(fake_provider, quirk_allows, requested, expected):
    call = model_call(options=GenerationOptions(parallel_tool_calls=requested))
    body = await openai_body(fake_provider, call, OpenAIQuirks(parallel_tool_calls=quirk_allows))
    assert body.get("parallel_tool_calls", "absent") == expected


async def test_openai_sampling_options(openai_provider, fake_provider):
    sampling = GenerationOptions(temperature=0.2, top_p=0.9, stop=("END", "STOP"), max_output_tokens=64)
    call = model_call(options=sampling)
    body = (await sent_request(openai_provider, fake_provider, call)).json()
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["stop"] == ["END", "STOP"]
    assert body["max_completion_tokens"] == 64
    assert "max_tokens" not in body


@pytest.mark.parametrize(
    "quirks",
    [OpenAIQuirks(max_tokens_field="max_tokens"), replace(OpenAIQuirks(), **PRESETS["ollama"])],
    ids=["quirk", "ollama-preset"],
)
async def test_openai_max_tokens_field_quirk(fake_provider, quirks):
    call = model_call(options=GenerationOptions(max_output_tokens=64))
    body = await openai_body(fake_provider, call, quirks)
    assert body["max_tokens"] == 64
    assert "max_completion_tokens" not in body


async def test_openai_without_include_usage_sends_no_stream_options(fake_provider):
    body = await openai_body(fake_provider, model_call(), OpenAIQuirks(include_usage=False))
    assert "stream_options" not in body
    assert body["stream"] is True


async def test_openai_extra_body_merged_and_extra_headers_sent(fake_provider):
    quirks = OpenAIQuirks(
        extra_body={"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}},
        extra_headers={"X-Test-Route": "blue"},
    )
    async with configured(fake_provider, "openai", quirks=quirks) as provider:
        request = await sent_request(provider, fake_provider, model_call())
    body = request.json()
    assert body["top_k"] == 20
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "extra_body" not in body
    assert request.headers["x-test-route"] == "blue"
    assert request.headers["accept-encoding"] == "identity"


async def test_openai_developer_system_role(fake_provider):
    call = model_call(Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "Hi"))
    body = await openai_body(fake_provider, call, OpenAIQuirks(system_role="developer"))
    assert body["messages"][0] == {"role": "developer", "content": "Be brief."}


@pytest.mark.parametrize(
    ("reasoning", "send_back", "expected"),
    [
        ((Reasoning("openai", "thought"),), True, "thought"),
        ((Reasoning("openai", "thought"),), False, None),
        ((Reasoning("anthropic", "thought", signature="signature-1"),), True, None),
    ],
    ids=["openai-sent-back", "quirk-off", "anthropic-never"],
)
async def test_openai_reasoning_sent_back(fake_provider, reasoning, send_back, expected):
    call = model_call(
        Message(Role.USER, "Weather?"),
        Message(Role.ASSISTANT, "Let me look.", reasoning=reasoning),
        Message(Role.USER, "Go on."),
    )
    body = await openai_body(fake_provider, call, OpenAIQuirks(send_reasoning_back=send_back))
    assert body["messages"][1].get("reasoning_content") == expected


async def test_openai_without_tools_sends_no_tool_keys(openai_provider, fake_provider):
    call = model_call(tools=(), options=GenerationOptions(parallel_tool_calls=True))
    body = (await sent_request(openai_provider, fake_provider, call)).json()
    for key in ("tools", "tool_choice", "parallel_tool_calls"):
        assert key not in body, key


# --- Anthropic Messages --------------------------------------------------------------------------


async def test_anthropic_request_path_stream_and_headers(anthropic_provider, fake_provider):
    request = await sent_request(anthropic_provider, fake_provider, model_call())
    body = request.json()
    assert request.method == "POST"
    assert request.path == "/v1/messages"
    assert body["model"] == "test-model"
    assert body["stream"] is True
    assert body["max_tokens"] == 4096
    assert "system" not in body
    assert body["tools"] == [
        {"name": WEATHER.name, "description": WEATHER.description, "input_schema": WEATHER.parameters}
    ]
    assert body["tool_choice"] == {"type": "auto"}
    assert request.headers["accept-encoding"] == "identity"
    key_sent = ANTHROPIC_KEY in request.headers.get("x-api-key", "") or ANTHROPIC_KEY in request.headers.get(
        "authorization", ""
    )
    assert key_sent, "the API key is in neither the x-api-key nor the authorization header"


async def test_anthropic_system_messages_joined_into_system_parameter(anthropic_provider, fake_provider):
    call = model_call(
        Message(Role.SYSTEM, "You are terse."),
        Message(Role.SYSTEM, "Answer in French."),
        Message(Role.USER, "Hi"),
    )
    body = (await sent_request(anthropic_provider, fake_provider, call)).json()
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


async def test_anthropic_conversation_messages(anthropic_provider, fake_provider):
    body = (await sent_request(anthropic_provider, fake_provider, model_call(*CONVERSATION))).json()
    error_content = {"content": "weather service down", "is_error": True}
    assert body["system"] == "You are terse."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                tool_use("call_1", {"location": "Paris"}),
                tool_use("call_2", {"location": "Rome"}),
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C, sunny"},
                {**{"type": "tool_result", "tool_use_id": "call_2"}, **error_content},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]


async def test_anthropic_consecutive_user_messages_merged(anthropic_provider, fake_provider):
    call = model_call(Message(Role.USER, "First."), Message(Role.USER, "Second."))
    body = (await sent_request(anthropic_provider, fake_provider, call)).json()
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}]}
    ]


async def test_anthropic_assistant_blocks_in_order(anthropic_provider, fake_provider):
    reasoning = (
        Reasoning("anthropic", "I should check.", signature="signature-1"),
        Reasoning("anthropic", "", redacted_data="opaque-data"),
        Reasoning("openai", "another API's reasoning"),
        Reasoning("anthropic", "unsigned thinking"),
    )
    assistant = Message(
        Role.ASSISTANT,
        "Let me check.",
        tool_calls=(
            ToolCall("toolu_1", "get_weather", '{"location": "Paris"}'),
            ToolCall("toolu_2", "get_weather", '{"location": '),
        ),
        reasoning=reasoning,
    )
    call = model_call(Message(Role.USER, "Weather?"), assistant)
    body = (await sent_request(anthropic_provider, fake_provider, call)).json()
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "I should check.", "signature": "signature-1"},
            {"type": "redacted_thinking", "data": "opaque-data"},
            {"type": "text", "text": "Let me check."},
            tool_use("toolu_1", {"location": "Paris"}),
            tool_use("toolu_2", {}),  # invalid JSON arguments
        ],
    }


async def test_anthropic_assistant_without_text_has_no_text_block(anthropic_provider, fake_provider):
    assistant = Message(Role.ASSISTANT, "", tool_calls=(ToolCall("toolu_1", "get_weather", ""),))
    call = model_call(Message(Role.USER, "Weather?"), assistant)
    body = (await sent_request(anthropic_provider, fake_provider, call)).json()
    assert body["messages"][1]["content"] == [tool_use("toolu_1", {})]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (ToolChoice(ToolChoiceMode.AUTO), None, {"type": "auto"}),
        (ToolChoice(ToolChoiceMode.REQUIRED), None, {"type": "any"}),
        (ToolChoice(ToolChoiceMode.TOOL, "get_weather"), None, {"type": "tool", "name": "get_weather"}),
        (ToolChoice(ToolChoiceMode.NONE), None, {"type": "none"}),
        (ToolChoice(ToolChoiceMode.AUTO), False, {"type": "auto", "disable_parallel_tool_use": True}),
        (ToolChoice(ToolChoiceMode.AUTO), True, {"type": "auto"}),
    ],
)
async def test_anthropic_tool_choice(anthropic_provider, fake_provider, choice, parallel, expected):
    call = model_call(options=GenerationOptions(tool_choice=choice, parallel_tool_calls=parallel))
    assert (await sent_request(anthropic_provider, fake_provider, call)).json()["tool_choice"] == expected


async def test_anthropic_max_tokens_and_stop_sequences(anthropic_provider, fake_provider):
    call = model_call(options=GenerationOptions(max_output_tokens=321, stop=("END", "STOP")))
    body = (await sent_request(anthropic_provider, fake_provider, call)).json()
    assert body["max_tokens"] == 321
    assert body["stop_sequences"] == ["END", "STOP"]
    assert "stop" not in body


@pytest.mark.parametrize(("field", "value"), [("temperature", 0.3), ("top_p", 0.8)])
async def test_anthropic_temperature_and_top_p(anthropic_provider, fake_provider, field, value):
    """Sent in the body, or refused with a domain error naming the option: never a bare crash (the
    installed anthropic SDK's `messages.create` no longer has these keyword arguments)."""
    call = model_call(options=GenerationOptions(**{field: value}))
    outcome: dict[str, Any] | Exception
    try:
        outcome = (await sent_request(anthropic_provider, fake_provider, call)).json()
    except (ToolwireError, TypeError) as error:
        outcome = error
    assert not isinstance(outcome, TypeError), (
        f"BUG: GenerationOptions.{field} crashes the Anthropic adapter with a bare TypeError "
        f"(anthropic {anthropic.__version__}): {outcome}"
    )
    if isinstance(outcome, ToolwireError):
        assert field in outcome.message, outcome.message
    else:
        assert outcome[field] == value


async def test_anthropic_without_tools_sends_no_tool_keys(anthropic_provider, fake_provider):
    call = model_call(tools=(), options=GenerationOptions(parallel_tool_calls=False))
    body = (await sent_request(anthropic_provider, fake_provider, call)).json()
    for key in ("tools", "tool_choice", "temperature", "top_p", "stop_sequences"):
        assert key not in body, key


async def test_anthropic_extra_body_merged_and_extra_headers_sent(fake_provider):
    thinking = {"type": "enabled", "budget_tokens": 2048}
    anthropic_options = AnthropicOptions(
        default_max_tokens=8192,
        extra_body={"thinking": thinking},
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    async with configured(fake_provider, "anthropic", anthropic=anthropic_options) as provider:
        request = await sent_request(provider, fake_provider, model_call())
    body = request.json()
    assert body["thinking"] == thinking
    assert body["max_tokens"] == 8192
    assert "extra_body" not in body
    assert request.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert request.headers["accept-encoding"] == "identity"

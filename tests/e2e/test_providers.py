"""Real providers end to end: a `toolwire serve` process configured with a TOML file, talking to a
fake OpenAI/Anthropic server on loopback through the real SDKs, driven by the Python client.

The point: an application switches `scripted/weather` to `openai/...`, `anthropic/...`, a local
compatible server or an alias, and nothing else changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.conftest import ServerProcess, start_server, stop_server
from tests.fakes.provider import FakeProvider, Reply
from toolwire.client import Client, Finish, TextDelta, ToolRequest, ToolwireError, tool

pytestmark = pytest.mark.timeout(30)

FIXTURES = Path(__file__).parent.parent / "providers" / "fixtures"
OPENAI_KEY = "sk-e2e-openai-secret-0123456789"
ANTHROPIC_KEY = "sk-ant-e2e-secret-0123456789"


@tool
def get_weather(location: str, unit: str = "celsius") -> str:
    """Current weather for a place."""
    return f"sunny in {location}, 21 degrees {unit}"


@tool
def get_time(timezone: str) -> str:
    """Local time in a time zone."""
    return f"12:00 in {timezone}"


def fixture(name: str) -> Reply:
    return Reply(body=(FIXTURES / name).read_bytes(), split_seed=3)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as running:
        yield running


@pytest.fixture(scope="module")
def provider_server(fake, tmp_path_factory) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("config") / "toolwire.toml"
    config.write_text(
        f"""
[retry]
max_attempts = 1

[providers.openai]
base_url = "{fake.url}/v1"
models = ["gpt-test"]

[providers.anthropic]
base_url = "{fake.url}"
models = ["claude-test"]

[providers.local]
api = "openai"
base_url = "{fake.url}/v1"
preset = "ollama"
models = ["qwen-test"]

[aliases]
smart = ["anthropic/claude-test", "openai/gpt-test"]
"""
    )
    server = start_server(
        "--config",
        str(config),
        "--log-level",
        "DEBUG",  # the secrets check below covers debug logging too
        environment={"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY},
    )
    yield server
    log = server.log_text()
    assert stop_server(server) == 0, log
    assert "chat " in log  # the log is really captured, at DEBUG
    assert OPENAI_KEY not in log, "the OpenAI key leaked into the server log"
    assert ANTHROPIC_KEY not in log, "the Anthropic key leaked into the server log"


@pytest.fixture
async def client(provider_server, fake):
    fake.requests.clear()
    async with Client(provider_server.target) as opened:
        yield opened


async def run_weather_chat(client: Client, model: str) -> list:
    return [
        event
        async for event in client.chat(model, "Weather and time, please?", tools=[get_weather, get_time])
    ]


@pytest.mark.parametrize(
    ("model", "first_turn", "second_turn"),
    [
        ("openai/gpt-test", "openai/parallel-2-tools-split-args.sse", "openai/text-only-usage.sse"),
        ("anthropic/claude-test", "anthropic/text-then-2-tool-uses.sse", "anthropic/text-only.sse"),
        ("local/qwen-test", "openai/ollama-parallel-whole-args.sse", "openai/text-only-usage.sse"),
    ],
)
async def test_a_tool_round_through_each_provider(client, fake, model, first_turn, second_turn):
    fake.enqueue(fixture(first_turn), fixture(second_turn))
    events = await run_weather_chat(client, model)
    requests = [event for event in events if isinstance(event, ToolRequest)]
    assert [request.name for request in requests] == ["get_weather", "get_time"]
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert finish.reason == "stop"
    assert finish.text and finish.text == "".join(
        e.text for e in events if isinstance(e, TextDelta) and e.round == 2
    )
    # the OpenAI-format first turns report no usage: the chat's total is unknown, not a partial sum
    assert (finish.input_tokens is not None) == model.startswith("anthropic")
    assert len(fake.requests) == 2
    follow_up = fake.requests[1].json()
    answered = [request.tool_call_id for request in requests]
    if model.startswith("anthropic"):
        user_turn = follow_up["messages"][-1]
        assert [block["tool_use_id"] for block in user_turn["content"]] == answered
        assert follow_up["messages"][-2]["content"][-1]["type"] == "tool_use"
    else:
        assert [message["tool_call_id"] for message in follow_up["messages"][-2:]] == answered
        assert [call["id"] for call in follow_up["messages"][-3]["tool_calls"]] == answered
        assert "sunny in" in follow_up["messages"][-2]["content"]


async def test_an_alias_falls_back_when_the_first_model_is_overloaded(client, fake):
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake.enqueue(Reply.json(529, overloaded), fixture("openai/text-only-usage.sse"))
    finish = await client.run("smart", "Tallest mountain in Japan?")
    assert finish.text.startswith("The tallest mountain in Japan")
    assert [request.path for request in fake.requests] == ["/v1/messages", "/v1/chat/completions"]


async def test_a_rate_limit_surfaces_as_resource_exhausted_with_the_delay(client, fake):
    limited = {"error": {"message": "Rate limit reached", "type": "requests"}}
    fake.enqueue(Reply.json(429, limited, headers={"retry-after": "7"}))
    with pytest.raises(ToolwireError) as raised:
        await client.run("openai/gpt-test", "Hello")
    assert raised.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Rate limit reached" in raised.value.details
    assert "retry after 7 s" in raised.value.details


async def test_a_rejected_key_is_unauthenticated_and_never_echoed(client, fake, provider_server):
    echo = {
        "error": {"message": f"Incorrect API key provided: {OPENAI_KEY}.", "type": "invalid_request_error"}
    }
    fake.enqueue(Reply.json(401, echo))
    with pytest.raises(ToolwireError) as raised:
        await client.run("openai/gpt-test", "Hello")
    assert raised.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert OPENAI_KEY not in raised.value.details
    assert "Incorrect API key provided" in raised.value.details
    assert OPENAI_KEY not in provider_server.log_text() and ANTHROPIC_KEY not in provider_server.log_text()


async def test_cancelling_a_chat_closes_the_provider_stream(client, fake):
    lines = [b'data: {"choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'] * 400
    fake.enqueue(Reply(body=b"".join(lines), chunk_delay=0.01, split_seed=5))
    closed_before = fake.closed_early
    stream = client.chat("openai/gpt-test", "Talk for a long time")
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()
    await asyncio.to_thread(fake.wait_closed_early, closed_before + 1)
    assert fake.completed == 0 or fake.closed_early > closed_before


async def test_list_models_shows_what_is_configured(client):
    model_ids = {model.id for model in await client.list_models()}
    assert {"openai/gpt-test", "anthropic/claude-test", "local/qwen-test", "smart"} <= model_ids
    assert "scripted/weather" in model_ids

"""The scenario list, run by the Python client against a real `toolwire serve` process.

The Go and TypeScript suites use the same scenario names so a reader can line the three up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from toolwire.client import (
    Client,
    Finish,
    Message,
    Started,
    TextDelta,
    Tool,
    ToolCallAbandoned,
    ToolCallRejected,
    ToolRequest,
    ToolResultSent,
    ToolwireError,
    tool,
)
from toolwire.v1 import chat_pb2 as pb

pytestmark = pytest.mark.timeout(30)


@tool
def get_weather(location: str) -> dict[str, object]:
    """Current weather for a place.

    Args:
        location: A city name.
    """
    return {"location": location, "sky": "sunny"}


@tool
def get_time(city: str) -> str:
    """Local time in a city."""
    return f"12:00 in {city}"


async def collect(client: Client, model: str, **options) -> list:
    options.setdefault("tools", [get_weather, get_time])
    return [event async for event in client.chat(model, "What is the weather in Paris?", **options)]


@pytest.fixture
async def client(toolwire_server):
    async with Client(toolwire_server.target) as opened:
        yield opened


async def test_text_only(client):
    events = await collect(client, "scripted/echo", tools=[])
    assert isinstance(events[0], Started) and events[0].model == "scripted/echo"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "What is the weather in Paris?"
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.reason, finish.rounds, finish.tools_called) == ("stop", 1, [])
    assert finish.input_tokens is None  # the echo model reports no usage


async def test_one_tool_round(client):
    events = await collect(client, "scripted/weather")
    requests = [e for e in events if isinstance(e, ToolRequest)]
    assert [(r.name, r.arguments) for r in requests] == [("get_weather", {"location": "Paris"})]
    sent = [e for e in events if isinstance(e, ToolResultSent)]
    assert json.loads(sent[0].content) == {"location": "Paris", "sky": "sunny"}
    finish = events[-1]
    assert (finish.text, finish.rounds, finish.tools_called) == ("It is sunny in Paris.", 2, ["get_weather"])
    assert (finish.input_tokens, finish.output_tokens) == (52, 16)
    assert [m.role for m in finish.messages] == ["assistant", "tool", "assistant"]
    assert finish.messages[0].tool_calls[0].id == requests[0].tool_call_id


async def test_two_parallel_calls_answered_out_of_order(client):
    @tool
    async def get_weather(location: str) -> str:
        """Slow weather."""
        await asyncio.sleep(0.3)
        return "sunny"

    events = await collect(client, "scripted/parallel", tools=[get_weather, get_time])
    assert [e.name for e in events if isinstance(e, ToolRequest)] == ["get_weather", "get_time"]
    assert [e.name for e in events if isinstance(e, ToolResultSent)] == ["get_time", "get_weather"]
    finish = events[-1]
    results = {m.tool_call_id: m.content for m in finish.messages if m.role == "tool"}
    assert results == {"call_w": "sunny", "call_t": "12:00 in Tokyo"}


async def test_a_tool_that_throws(client):
    @tool
    def get_weather(location: str) -> str:
        """Always fails."""
        raise ConnectionError("weather service down")

    events = await collect(client, "scripted/weather", tools=[get_weather])
    sent = next(e for e in events if isinstance(e, ToolResultSent))
    assert sent.is_error and "weather service down" in sent.content
    tool_message = events[-1].messages[1]
    assert tool_message.is_error and "ConnectionError" in tool_message.content
    assert events[-1].reason == "stop"


async def test_an_unknown_tool_is_handled_by_the_server(client):
    events = await collect(client, "scripted/unknown_tool")
    assert not [e for e in events if isinstance(e, ToolRequest)]
    rejected = [e for e in events if isinstance(e, ToolCallRejected)]
    assert [r.name for r in rejected] == ["launch_rocket"] and "Unknown tool" in rejected[0].reason
    assert events[-1].text == "I cannot do that."


async def test_a_chat_cancelled_mid_stream_leaves_the_server_healthy(client, toolwire_server):
    async with contextlib.aclosing(client.chat("scripted/slow", "hi")) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                break  # cancel while the model is still streaming
    async with grpc.aio.insecure_channel(toolwire_server.target) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    finish = await client.run("scripted/weather", "again", tools=[get_weather])
    assert finish.reason == "stop"


async def test_max_tool_rounds(client):
    finish = await client.run("scripted/loop", "go", tools=[get_time], max_tool_rounds=2)
    assert (finish.reason, finish.rounds, finish.tools_called) == (
        "max_tool_rounds",
        3,
        ["get_time", "get_time"],
    )


async def test_a_server_error_surfaces_as_a_typed_error(client):
    with pytest.raises(ToolwireError) as unavailable:
        await client.run("scripted/unavailable", "hi")
    assert unavailable.value.code is grpc.StatusCode.UNAVAILABLE
    assert "the model is overloaded" in unavailable.value.details
    with pytest.raises(ToolwireError) as not_found:
        await client.run("scripted/no_such_script", "hi")
    assert not_found.value.code is grpc.StatusCode.NOT_FOUND


async def test_manual_mode_answers_tool_requests_by_hand(client):
    manual = Tool.from_schema(
        "get_weather", "weather", {"type": "object", "properties": {"location": {"type": "string"}}}
    )
    seen = []
    async with client.chat_session("scripted/weather", "Weather?", tools=[manual]) as session:
        async for event in session:
            seen.append(event)
            if isinstance(event, ToolRequest):
                await session.send_result(event.tool_call_id, "cloudy, by hand")
    assert seen[-1].messages[1].content == "cloudy, by hand"


async def test_a_tool_slower_than_the_timeout_is_abandoned(client):
    @tool
    async def get_weather(location: str) -> str:
        """Too slow."""
        await asyncio.sleep(2)
        return "late"

    events = await collect(client, "scripted/weather", tools=[get_weather], tool_timeout=0.3)
    abandoned = [e for e in events if isinstance(e, ToolCallAbandoned)]
    assert [a.tool_call_id for a in abandoned] == ["call_1"]
    assert events[-1].messages[1].is_error and events[-1].reason == "stop"


async def test_finish_messages_continue_the_conversation(client):
    first = await client.run("scripted/weather", "Weather in Paris?", tools=[get_weather])
    history = [Message.user("Weather in Paris?"), *first.messages, Message.user("Thanks, and now echo this")]
    second = await client.run("scripted/echo", history)
    assert second.text == "Thanks, and now echo this"


async def test_list_models(client):
    models = await client.list_models()
    assert {"scripted/echo", "scripted/weather", "scripted/slow"} <= {model.id for model in models}


async def test_fifty_concurrent_chats(client):
    finishes = await asyncio.gather(
        *(client.run("scripted/parallel", "both", tools=[get_weather, get_time]) for _ in range(50))
    )
    assert all(f.reason == "stop" and f.tools_called == ["get_weather", "get_time"] for f in finishes)


PACED_TEXT = "The quick brown fox jumps over the lazy dog, twice."
"""What scripted/paced says, in 10 chunks 40 ms apart (tests/scripts/paced.json)."""


async def test_a_text_window_sends_fewer_larger_text_deltas(client):
    events = await collect(client, "scripted/paced", tools=[], text_coalesce_window=0.2)
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == PACED_TEXT == events[-1].text
    assert len(deltas) < 10, deltas


MIB = 1024 * 1024
PAGE_CHARACTERS = 1_000_000
"""The size of each read_page result: under the server's max_tool_result_bytes (1 MiB) and
max_request_bytes (4 MiB), while five of them make a ChatFinish over 4 MiB."""


@tool
def read_page(page: int) -> str:
    """One page of a long document, about 1 MB of text."""
    prefix = f"page {page}: "
    return prefix + "x" * (PAGE_CHARACTERS - len(prefix))


async def test_a_finish_over_4_mib_arrives(client):
    finish = await client.run("scripted/big_results", "Read the document.", tools=[read_page])
    assert (finish.reason, finish.text, finish.rounds) == ("stop", "Read five pages.", 6)
    results = [m.content for m in finish.messages if m.role == "tool"]
    assert [r[: r.index(":")] for r in results] == [f"page {n}" for n in range(1, 6)]
    assert {len(r) for r in results} == {PAGE_CHARACTERS}
    size = pb.ChatFinish(text=finish.text, messages=[m.to_proto() for m in finish.messages]).ByteSize()
    assert size > 4 * MIB, size  # over the 4 MiB default of grpc clients


async def test_a_finish_over_the_receive_limit_is_resource_exhausted(toolwire_server):
    async with Client(toolwire_server.target, max_receive_message_bytes=4 * MIB) as small:
        with pytest.raises(ToolwireError) as exhausted:
            await small.run("scripted/big_results", "Read the document.", tools=[read_page])
    assert exhausted.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_the_weather_example_runs(toolwire_server, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "examples" / "python" / "weather" / "weather.py"
    spec = importlib.util.spec_from_file_location("weather_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    finish = await example.main(toolwire_server.target, "scripted/weather")
    assert finish.reason == "stop"
    printed = capsys.readouterr().out
    assert "It is sunny in Paris." in printed and '[tool] get_weather({"location": "Paris"})' in printed

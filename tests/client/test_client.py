"""The client against an in-process fake ChatService whose behaviour each test scripts."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from datetime import timedelta
from typing import Any, TypeAlias

import grpc
import pytest

from toolwire.client import (
    Client,
    Event,
    Finish,
    Message,
    ModelInfo,
    Started,
    TextDelta,
    Tool,
    ToolRequest,
    ToolResultSent,
    ToolwireError,
    tool,
)
from toolwire.v1 import chat_pb2 as pb
from toolwire.v1 import chat_pb2_grpc

Context: TypeAlias = grpc.aio.ServicerContext[pb.ChatRequest, pb.ChatResponse]
Handler = Callable[[Context], Awaitable[None]]
WEATHER_SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}}}


class FakeChatService(chat_pb2_grpc.ChatServiceServicer):
    """Runs the test's handler for each Chat and records what happened."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.start: pb.ChatStart | None = None
        self.cancelled = asyncio.Event()

    async def Chat(self, request_iterator: object, context: Context) -> None:
        assert self.handler is not None
        try:
            await self.handler(context)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def ListModels(self, request: pb.ListModelsRequest, context: Context) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[pb.ModelInfo(id="fake/one", provider="fake", description="A fake.")]
        )

    async def read_start(self, context: Context) -> pb.ChatStart:
        request = await context.read()
        assert request.WhichOneof("kind") == "start"
        self.start = request.start
        return self.start


@pytest.fixture
def service() -> FakeChatService:
    return FakeChatService()


@pytest.fixture
async def target(service: FakeChatService) -> AsyncIterator[str]:
    """The address of an in-process server running `service`."""
    server = grpc.aio.server()
    chat_pb2_grpc.add_ChatServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
async def client(target: str) -> AsyncIterator[Client]:
    async with Client(target) as opened:
        yield opened


def started() -> pb.ChatResponse:
    return pb.ChatResponse(started=pb.ChatStarted(chat_id="chat-1", model="fake/one"))


def text(content: str, model_round: int = 1) -> pb.ChatResponse:
    return pb.ChatResponse(text_delta=pb.TextDelta(text=content, round=model_round))


def tool_request(tool_call_id: str, name: str, arguments: dict[str, Any]) -> pb.ChatResponse:
    request = pb.ToolRequest(
        tool_call_id=tool_call_id, name=name, arguments_json=json.dumps(arguments), round=1
    )
    return pb.ChatResponse(tool_request=request)


def finish(answer: str = "done") -> pb.ChatResponse:
    return pb.ChatResponse(finish=pb.ChatFinish(reason=pb.FINISH_REASON_STOP, text=answer, rounds=2))


async def read_result(context: Context) -> pb.ToolResult:
    request = await asyncio.wait_for(context.read(), 5)
    assert request.WhichOneof("kind") == "tool_result", request
    result: pb.ToolResult = request.tool_result
    return result


async def test_tools_run_concurrently_and_results_are_sent_as_they_complete(
    client: Client, service: FakeChatService
) -> None:
    fast_done = asyncio.Event()
    received: list[pb.ToolResult] = []

    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await context.write(tool_request("slow-1", "slow", {"value": "a"}))
        await context.write(tool_request("fast-1", "fast", {"value": "b"}))
        received.extend([await read_result(context), await read_result(context)])
        await context.write(finish())

    async def slow(value: str) -> str:
        await asyncio.wait_for(fast_done.wait(), 5)  # Deadlocks unless fast runs at the same time.
        return f"slow {value}"

    async def fast(value: str) -> str:
        fast_done.set()
        return f"fast {value}"

    service.handler = handler
    events = [event async for event in client.chat("fake/one", "go", tools=[slow, fast])]

    assert [(result.tool_call_id, result.content) for result in received] == [
        ("fast-1", "fast b"),
        ("slow-1", "slow a"),
    ]
    assert [type(event).__name__ for event in events] == [
        "Started",
        "ToolRequest",
        "ToolRequest",
        "ToolResultSent",
        "ToolResultSent",
        "Finish",
    ]
    assert events[3] == ToolResultSent("fast-1", "fast", "fast b", False)
    assert events[4] == ToolResultSent("slow-1", "slow", "slow a", False)


async def test_sync_tool_result_and_exception_become_results(
    client: Client, service: FakeChatService
) -> None:
    received: dict[str, pb.ToolResult] = {}

    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await context.write(tool_request("call-1", "get_weather", {"location": "Paris"}))
        await context.write(tool_request("call-2", "get_weather", {"location": "Atlantis"}))
        for _ in range(2):
            result = await read_result(context)
            received[result.tool_call_id] = result
        await context.write(finish("sunny"))

    def get_weather(location: str) -> dict[str, str]:
        if location == "Atlantis":
            raise LookupError("no such place")
        return {"sky": "sunny"}

    service.handler = handler
    result = await client.run("fake/one", "weather?", tools=[get_weather])

    assert result.text == "sunny"
    assert received["call-1"] == pb.ToolResult(tool_call_id="call-1", content='{"sky": "sunny"}')
    assert received["call-2"] == pb.ToolResult(
        tool_call_id="call-2", content="LookupError: no such place", is_error=True
    )


async def test_start_request_carries_messages_tools_and_options(
    client: Client, service: FakeChatService
) -> None:
    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await context.write(finish())

    @tool
    def get_weather(location: str) -> str:
        """Gets the weather."""
        return location

    service.handler = handler
    await client.run(
        "fake/one",
        [Message.system("Be brief."), pb.Message(role=pb.ROLE_USER, content="Hi")],
        tools=[get_weather],
        max_tool_rounds=3,
        temperature=0.0,
        max_output_tokens=100,
        stop=["END"],
        tool_choice=get_weather,
        parallel_tool_calls=False,
        tool_timeout=1.5,
        stream_tool_arguments=True,
        text_coalesce_window=timedelta(milliseconds=30),
    )

    start = service.start
    assert start is not None
    assert list(start.messages) == [
        pb.Message(role=pb.ROLE_SYSTEM, content="Be brief."),
        pb.Message(role=pb.ROLE_USER, content="Hi"),
    ]
    assert [(each.name, each.description) for each in start.tools] == [("get_weather", "Gets the weather.")]
    assert json.loads(start.tools[0].parameters_json_schema) == get_weather.parameters_json_schema
    assert (start.max_tool_rounds, start.max_output_tokens, list(start.stop)) == (3, 100, ["END"])
    assert start.HasField("temperature")
    assert start.temperature == 0.0
    assert not start.HasField("top_p")
    assert start.HasField("parallel_tool_calls")
    assert not start.parallel_tool_calls
    assert start.tool_choice == pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_TOOL, tool_name="get_weather")
    assert start.tool_timeout.ToTimedelta().total_seconds() == 1.5
    assert start.stream_tool_arguments
    assert start.text_coalesce_window.ToNanoseconds() == 30_000_000


async def test_defaults_leave_optional_fields_unset(client: Client, service: FakeChatService) -> None:
    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await context.write(finish())

    service.handler = handler
    await client.run("fake/one", "Hello", tool_choice="required")

    start = service.start
    assert start is not None
    assert list(start.messages) == [pb.Message(role=pb.ROLE_USER, content="Hello")]
    for field in ("temperature", "top_p", "parallel_tool_calls", "tool_timeout", "text_coalesce_window"):
        assert not start.HasField(field), field
    assert start.tool_choice == pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_REQUIRED)


async def test_request_side_stays_open_until_finish(client: Client, service: FakeChatService) -> None:
    observations: list[str] = []

    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await context.write(tool_request("call-1", "echo", {"text": "x"}))
        await read_result(context)
        await context.write(text("answer", 2))
        try:
            await asyncio.wait_for(context.read(), 0.2)
            observations.append("unexpected message")
        except TimeoutError:
            observations.append("still open")
        await context.write(finish())
        end = await asyncio.wait_for(context.read(), 5)
        observations.append("half-closed" if end is grpc.aio.EOF else "unexpected message")  # type: ignore[attr-defined]

    def echo(text: str) -> str:
        return text

    service.handler = handler
    result = await client.run("fake/one", "go", tools=[echo])

    assert result.text == "done"
    assert observations == ["still open", "half-closed"]


async def test_breaking_early_cancels_the_rpc(client: Client, service: FakeChatService) -> None:
    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await context.write(text("a"))
        await asyncio.sleep(30)

    service.handler = handler
    async with aclosing(client.chat("fake/one", "go")) as events:
        async for event in events:
            assert isinstance(event, Started)
            break

    await asyncio.wait_for(service.cancelled.wait(), 5)


async def test_cancelling_the_task_cancels_the_rpc_and_running_tools(
    client: Client, service: FakeChatService
) -> None:
    tool_started = asyncio.Event()
    tool_cancelled = asyncio.Event()

    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await context.write(tool_request("call-1", "hang", {}))
        await asyncio.sleep(30)

    async def hang() -> str:
        tool_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            tool_cancelled.set()
            raise
        return "never"

    service.handler = handler
    task = asyncio.create_task(client.run("fake/one", "go", tools=[hang]))
    await asyncio.wait_for(tool_started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await asyncio.wait_for(service.cancelled.wait(), 5)
    assert tool_cancelled.is_set()


async def test_manual_mode_send_result(client: Client, service: FakeChatService) -> None:
    received: list[pb.ToolResult] = []

    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await context.write(tool_request("call-1", "get_weather", {"location": "Paris"}))
        received.append(await read_result(context))
        await context.write(finish("rainy"))

    service.handler = handler
    weather = Tool.from_schema("get_weather", "Gets the weather.", WEATHER_SCHEMA)
    events = []
    async with client.chat_session("fake/one", "weather?", tools=[weather]) as session:
        async for event in session:
            events.append(event)
            if isinstance(event, ToolRequest):
                assert event.arguments == {"location": "Paris"}
                with pytest.raises(ValueError, match="no ToolRequest with tool_call_id 'other'"):
                    await session.send_result("other", "x")
                await session.send_result(event.tool_call_id, "rainy", is_error=False)
                with pytest.raises(ValueError, match="already answered"):
                    await session.send_result(event.tool_call_id, "again")

    assert received == [pb.ToolResult(tool_call_id="call-1", content="rainy")]
    assert [type(event) for event in events] == [Started, ToolRequest, Finish]


async def test_chat_refuses_a_tool_without_function(client: Client, service: FakeChatService) -> None:
    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await context.write(tool_request("call-1", "get_weather", {"location": "Paris"}))
        await asyncio.sleep(30)

    service.handler = handler
    weather = Tool.from_schema("get_weather", "Gets the weather.", WEATHER_SCHEMA)
    with pytest.raises(RuntimeError, match=r"'get_weather', which has no function.*chat_session\(\)"):
        await client.run("fake/one", "weather?", tools=[weather])
    await asyncio.wait_for(service.cancelled.wait(), 5)


async def test_non_ok_status_raises_toolwire_error(client: Client, service: FakeChatService) -> None:
    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await context.write(text("partial"))
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "tool_result is too large")

    service.handler = handler
    events: list[Event] = []

    async def collect() -> None:
        async for event in client.chat("fake/one", "go"):
            events.append(event)

    with pytest.raises(ToolwireError) as raised:
        await collect()

    assert raised.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert raised.value.details == "tool_result is too large"
    assert str(raised.value) == "RESOURCE_EXHAUSTED: tool_result is too large"
    assert events == [Started("chat-1", "fake/one"), TextDelta("partial", 1)]


async def test_error_before_any_event(client: Client, service: FakeChatService) -> None:
    async def handler(context: Context) -> None:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "start.messages is empty")

    service.handler = handler
    with pytest.raises(ToolwireError, match=r"^INVALID_ARGUMENT: start.messages is empty$") as raised:
        await client.run("fake/one", [])
    assert raised.value.code is grpc.StatusCode.INVALID_ARGUMENT


async def test_stream_ending_without_finish_is_an_error(client: Client, service: FakeChatService) -> None:
    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())

    service.handler = handler
    with pytest.raises(ToolwireError, match="without a ChatFinish") as raised:
        await client.run("fake/one", "go")
    assert raised.value.code is grpc.StatusCode.INTERNAL


async def test_unreachable_server_is_unavailable() -> None:
    async with Client("127.0.0.1:1") as client:
        with pytest.raises(ToolwireError) as raised:
            await client.list_models()
    assert raised.value.code is grpc.StatusCode.UNAVAILABLE


async def test_list_models(client: Client) -> None:
    assert await client.list_models() == [ModelInfo("fake/one", "fake", "A fake.")]


async def test_passed_in_channel_is_not_closed(client: Client, service: FakeChatService) -> None:
    server = grpc.aio.server()
    chat_pb2_grpc.add_ChatServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    async with Client(channel=channel) as borrowed:
        assert len(await borrowed.list_models()) == 1
    async with Client(channel=channel) as again:
        assert len(await again.list_models()) == 1
    await channel.close(None)
    await server.stop(None)


def big_finish(tool_result_bytes: int) -> pb.ChatResponse:
    """A finish repeating one tool result of `tool_result_bytes`, as a real server's would."""
    tool_message = pb.Message(role=pb.ROLE_TOOL, content="x" * tool_result_bytes, tool_call_id="call-1")
    return pb.ChatResponse(
        finish=pb.ChatFinish(reason=pb.FINISH_REASON_STOP, text="done", rounds=2, messages=[tool_message])
    )


async def test_a_finish_over_4_mib_arrives_and_the_limit_is_configurable(
    client: Client, service: FakeChatService, target: str
) -> None:
    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await context.write(big_finish(5 * 1024 * 1024))

    service.handler = handler
    finish = await client.run("fake/one", "go")
    assert len(finish.messages[0].content) == 5 * 1024 * 1024
    async with Client(target, max_receive_message_bytes=1024 * 1024) as small:
        with pytest.raises(ToolwireError) as exhausted:
            await small.run("fake/one", "go")
    assert exhausted.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in exhausted.value.details


async def test_a_receive_limit_with_a_passed_in_channel_is_refused() -> None:
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    with pytest.raises(ValueError, match=r"grpc\.max_receive_message_length"):
        Client(channel=channel, max_receive_message_bytes=1024)
    await channel.close(None)


async def test_duplicate_tool_names_are_rejected(client: Client) -> None:
    def ping() -> str:
        return "pong"

    with pytest.raises(ValueError, match="two tools are named 'ping'"):
        client.chat_session("fake/one", "go", tools=[ping, ping])


async def test_plain_break_cancels_the_rpc_once_the_iterator_is_dropped(
    client: Client, service: FakeChatService
) -> None:
    async def handler(context: Context) -> None:
        await service.read_start(context)
        await context.write(started())
        await asyncio.sleep(30)

    service.handler = handler
    async for event in client.chat("fake/one", "go"):
        assert isinstance(event, Started)
        break

    await asyncio.wait_for(service.cancelled.wait(), 5)

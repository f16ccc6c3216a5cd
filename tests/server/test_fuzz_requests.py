"""Hypothesis fuzzing of the request side against an in-process server.

Random ChatRequest sequences (start, tool_result, neither, in any order), sizes within and past the
limits, odd ids, tool definitions with valid, invalid and deeply nested schemas, numeric options out
of range, messages with any role; and request messages that are not even a valid ChatRequest. Every
chat must end with OK or a status the server names on purpose (never UNKNOWN, never INTERNAL), the
server must log no unhandled exception, and it must keep serving: a health check and a normal chat
pass after every example.

The server talks to the scripted models and to an OpenAI-style fake provider on loopback, so the
options also reach a real adapter's request body.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SCRIPTS, WEATHER_TOOL, start_request
from tests.endurance.support import text_reply
from tests.fakes.provider import FakeProvider
from toolwire.server.app import Server, default_registry
from toolwire.server.settings import Limits, ServerSettings
from toolwire.v1 import chat_pb2 as pb
from toolwire.v1 import chat_pb2_grpc

pytestmark = [
    pytest.mark.timeout(120),
    # A failing example with a 100 kB string has a large repr; hypothesis warns about it as it prints it.
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

LIMITS = Limits(
    max_request_bytes=96 * 1024,
    max_messages=12,
    max_tools=6,
    max_tool_schema_bytes=8 * 1024,
    max_tool_result_bytes=4 * 1024,
    max_tool_rounds=5,
    max_tool_timeout_seconds=30.0,
)
NAMED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAVAILABLE,  # scripted/unavailable says so on purpose
}
"""What a fuzzed chat may end with. UNKNOWN and INTERNAL are bugs; so is DEADLINE_EXCEEDED here
(every chat is short: tool timeouts are bounded below, and the client answers or half-closes)."""

GRPC_TOO_LARGE = "SERVER: Received message larger than max"

MODELS = [
    "scripted/echo",
    "scripted/weather",
    "scripted/parallel",
    "scripted/loop",
    "scripted/short",
    "scripted/unknown_tool",
    "scripted/unavailable",
    "openai/fuzz",
]

# --- strategies ------------------------------------------------------------------------------------


def sized_text(limit: int) -> st.SearchStrategy[str]:
    """Short arbitrary text, or a long run of one character: up to the limit, and past it."""
    short = st.text(max_size=40)
    long = st.builds(
        lambda char, size: char * size,
        st.sampled_from(["x", "é", "🙂", "\x00", '"']),
        st.integers(min_value=limit // 2, max_value=limit * 2),
    )
    return st.one_of(short, short, short, long)


ids = st.one_of(
    st.just(""),
    st.sampled_from(["call_1", "call_2", "t1", "t2", "p1"]),
    st.text(max_size=12),
    sized_text(LIMITS.max_request_bytes),
)


def nested_schema(depth: int, kind: str) -> str:
    if kind == "properties":
        return '{"type": "object", "properties": {"a": ' * depth + "{}" + "}}" * depth
    if kind == "arrays":
        return "[" * depth + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
schemas = st.one_of(
    st.just(""),
    st.just('{"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}'),
    st.just('{"type": "object", "properties": 5}'),
    st.just('{"type": "array"}'),
    st.just("{oops"),
    st.just("[]"),
    st.just('{"$ref": "#/nowhere"}'),
    st.just('{"type": "object", "properties": {"a": {"$ref": "#"}}}'),
    st.just('{"type": "object", "properties": {"a": {"pattern": "("}}}'),
    st.builds(
        nested_schema,
        st.one_of(st.sampled_from([2, 40, 100, 150, 1000, 3000]), st.integers(min_value=1, max_value=3000)),
        st.sampled_from(["properties", "arrays", "objects"]),
    ),
    json_values.map(json.dumps),
    sized_text(LIMITS.max_tool_schema_bytes),
)
tool_names = st.one_of(
    st.sampled_from(["get_weather", "get_time", "launch_rocket", "a" * 64, "a" * 65, "bad name!", ""]),
    st.text(max_size=70),
)
tools = st.builds(
    pb.ToolDefinition, name=tool_names, description=st.text(max_size=30), parameters_json_schema=schemas
)
roles = st.one_of(st.sampled_from([0, 1, 2, 3, 4]), st.integers(min_value=-5, max_value=2**31 - 1))
tool_calls = st.builds(pb.ToolCall, id=ids, name=tool_names, arguments_json=st.text(max_size=30))
messages = st.builds(
    pb.Message,
    role=roles,
    content=sized_text(LIMITS.max_request_bytes),
    tool_calls=st.lists(tool_calls, max_size=3),
    tool_call_id=ids,
    is_error=st.booleans(),
)
floats = st.floats(allow_nan=True, allow_infinity=True)
int32 = st.one_of(
    st.integers(min_value=-(2**31), max_value=2**31 - 1), st.integers(min_value=-3, max_value=120)
)
durations = st.one_of(
    st.builds(
        duration_pb2.Duration, seconds=st.integers(-10, 100), nanos=st.integers(-999_999_999, 999_999_999)
    ),
    st.builds(duration_pb2.Duration, seconds=st.just(0), nanos=st.integers(1, 300_000_000)),
    st.builds(duration_pb2.Duration, seconds=st.integers(-(2**40), 2**40)),
)


@st.composite
def starts(draw: st.DrawFn) -> pb.ChatStart:
    start = pb.ChatStart(
        model=draw(st.one_of(st.sampled_from(MODELS), st.text(max_size=20), st.just("scripted/"))),
        messages=draw(
            st.one_of(
                st.just([pb.Message(role=pb.ROLE_USER, content="What is the weather in Paris?")]),
                st.lists(messages, max_size=LIMITS.max_messages + 2),
            )
        ),
        tools=draw(st.one_of(st.just([WEATHER_TOOL]), st.lists(tools, max_size=LIMITS.max_tools + 1))),
        max_tool_rounds=draw(int32),
        max_output_tokens=draw(int32),
        stop=draw(st.lists(st.text(max_size=5), max_size=5)),
        tool_choice=pb.ToolChoice(
            mode=draw(st.one_of(st.integers(0, 4), st.integers(-3, 1000))), tool_name=draw(tool_names)
        ),
        stream_tool_arguments=draw(st.booleans()),
    )
    if draw(st.booleans()):
        start.temperature = draw(floats)
    if draw(st.booleans()):
        start.top_p = draw(floats)
    if draw(st.booleans()):
        start.parallel_tool_calls = draw(st.booleans())
    if draw(st.booleans()):
        start.tool_timeout.CopyFrom(draw(durations))
    if draw(st.booleans()):
        start.text_coalesce_window.CopyFrom(draw(durations))
    return start


tool_results = st.builds(
    pb.ToolResult, tool_call_id=ids, content=sized_text(LIMITS.max_tool_result_bytes), is_error=st.booleans()
)
requests = st.one_of(
    st.builds(lambda start: pb.ChatRequest(start=start), starts()),
    st.builds(lambda result: pb.ChatRequest(tool_result=result), tool_results),
    st.just(pb.ChatRequest()),
)
sequences = st.one_of(
    st.tuples(st.builds(lambda start: pb.ChatRequest(start=start), starts())).map(list),
    st.lists(requests, min_size=0, max_size=4),
    st.builds(
        lambda first, rest: [pb.ChatRequest(start=first), *rest], starts(), st.lists(requests, max_size=3)
    ),
)
raw_messages = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda start: start.SerializeToString() + b"\xff", starts()),
    st.builds(
        lambda request, junk: request.SerializeToString() + junk, requests, st.binary(min_size=1, max_size=8)
    ),
)

# --- the server ------------------------------------------------------------------------------------


class ServerLog(logging.Handler):
    """What the server logs: records of exceptions nobody handled (ERROR and above, ours, asyncio's
    or grpc's), and the status of each chat from its one line (`toolwire.server.chat`)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.errors: list[logging.LogRecord] = []
        self.statuses: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors.append(record)
        elif record.name == "toolwire.server.chat":
            self.statuses.append(record.__dict__["status"])

    def take_statuses(self) -> list[str]:
        taken, self.statuses = self.statuses, []
        return taken


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as running:
        running.enqueue(*(text_reply("fuzzed ", "answer") for _ in range(5000)))
        yield running


@pytest.fixture
async def fuzz_server(fake, tmp_path) -> AsyncIterator[Server]:
    config = tmp_path / "toolwire.toml"
    config.write_text(f'[retry]\nmax_attempts = 1\n\n[providers.openai]\nbase_url = "{fake.url}/v1"\n')
    server_settings = ServerSettings(
        listen="127.0.0.1:0", script_dirs=(SCRIPTS,), limits=LIMITS, config_path=config
    )
    running = Server(
        server_settings, registry=default_registry(server_settings, {"OPENAI_API_KEY": "sk-fuzz"})
    )
    await running.start()
    yield running
    await running.stop(grace_seconds=0)


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    handler = ServerLog()
    chat_log = logging.getLogger("toolwire.server.chat")
    level = chat_log.level
    chat_log.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)
    chat_log.setLevel(level)


@pytest.fixture
async def fuzz_channel(fuzz_server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fuzz_server.port}") as opened:
        yield opened


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    events: list[pb.ChatResponse]
    oversized: bool
    """A request message was over max_request_bytes: gRPC refuses it (RESOURCE_EXHAUSTED) and ends the
    call itself; the chat under it ends when it next reads or writes (CANCELLED in its log), unless it
    has already failed on its own."""
    lost_to_a_write: bool = False
    """The call's status was replaced by the client library's INTERNAL "Internal error from Core":
    grpcio's asyncio client does that when a write fails because the server has just ended the call
    (grpc/grpc#36066). The server's own status is then only in its log."""


async def drive(call, sequence, answer: bool) -> Outcome:
    """Writes the sequence, then answers ToolRequests (or not) and half-closes; the chat's status."""
    events: list[pb.ChatResponse] = []
    # Without a start first the server waits for one: half-close, or the chat would only time out.
    answer = answer and bool(sequence) and sequence[0].HasField("start")
    oversized = any(
        len(request if isinstance(request, bytes) else request.SerializeToString()) > LIMITS.max_request_bytes
        for request in sequence
    )
    writing = False
    try:
        writing = True
        for request in sequence:
            await call.write(request)
        if not answer:
            await call.done_writing()
        writing = False
        while (response := await call.read()) is not grpc.aio.EOF:
            events.append(response)
            if answer and response.HasField("tool_request"):
                result = pb.ToolResult(
                    tool_call_id=response.tool_request.tool_call_id, content='{"sky": "clear"}'
                )
                writing = True
                await call.write(pb.ChatRequest(tool_result=result))
                writing = False
            if answer and response.HasField("finish"):
                await call.done_writing()
    except grpc.aio.AioRpcError as error:
        lost = (
            writing
            and error.code() is grpc.StatusCode.INTERNAL
            and error.details() == "Internal error from Core"
        )
        return Outcome(error.code(), error.details() or "", events, oversized, lost)
    except asyncio.InvalidStateError:  # a write after the server already ended the call
        pass
    return Outcome(await call.code(), await call.details() or "", events, oversized)


async def still_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    response = await health.Check(health_pb2.HealthCheckRequest(service="toolwire.v1.ChatService"), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    call = stub.Chat(timeout=10)
    outcome = await drive(call, [start_request("scripted/echo", tools=())], answer=True)
    assert outcome.code is grpc.StatusCode.OK, outcome.details
    assert outcome.events[-1].finish.text == "What is the weather in Paris?"


def check(outcome: Outcome, server_log: ServerLog) -> None:
    errors, server_log.errors = server_log.errors, []
    assert not errors, [(record.getMessage(), record.exc_info) for record in errors]
    statuses = server_log.take_statuses()
    assert len(statuses) == 1, f"one log line per chat, got {statuses}"
    (logged,) = statuses
    if outcome.details.startswith(GRPC_TOO_LARGE):
        assert outcome.oversized and outcome.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    if outcome.oversized:
        assert grpc.StatusCode[logged] in NAMED | {grpc.StatusCode.CANCELLED}, logged
        return
    assert grpc.StatusCode[logged] in NAMED, (
        f"the server ended the chat with {logged}; the client got {outcome}"
    )
    if outcome.lost_to_a_write:
        assert logged != "OK", "a write failed on a chat the server had not failed"
    else:
        assert outcome.code in NAMED, f"{outcome.code.name}: {outcome.details}"
        assert outcome.code.name == logged, f"the client got {outcome.code.name}, the server logged {logged}"
    kinds = [event.WhichOneof("event") for event in outcome.events]
    assert None not in kinds
    if kinds:
        assert kinds[0] == "started" and kinds.count("started") == 1
    if outcome.code is grpc.StatusCode.OK:
        assert kinds[-1] == "finish" and kinds.count("finish") == 1
    else:
        assert "finish" not in kinds
        assert outcome.details.strip(), "a failed chat must say why"


FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@FUZZ
@given(sequence=sequences, answer=st.booleans())
async def test_random_request_sequences_end_with_a_named_status(fuzz_channel, server_log, sequence, answer):
    stub = chat_pb2_grpc.ChatServiceStub(fuzz_channel)
    check(await drive(stub.Chat(timeout=15), sequence, answer), server_log)
    await still_serving(fuzz_channel)
    server_log.take_statuses()


@settings(FUZZ, max_examples=20)
@given(first=raw_messages, then=st.lists(raw_messages, max_size=2))
async def test_messages_that_are_not_chat_requests_end_with_a_named_status(
    fuzz_channel, server_log, first, then
):
    chat = fuzz_channel.stream_stream(
        "/toolwire.v1.ChatService/Chat",
        request_serializer=lambda raw: raw,
        response_deserializer=pb.ChatResponse.FromString,
    )
    check(await drive(chat(timeout=15), [first, *then], answer=False), server_log)
    await still_serving(fuzz_channel)
    server_log.take_statuses()

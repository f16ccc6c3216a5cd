"""`ChatStart.text_coalesce_window`: its checks, and what it does to a chat over a real gRPC call, in
process: fewer TextDelta messages and the same text, nothing held past another event, the finish or an
error status, and one message per chunk without it."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import grpc
import pytest
from google.protobuf import duration_pb2

from tests.conftest import SCRIPTS, WEATHER_TOOL, start_request
from tests.server.test_grpc import run_chat
from toolwire.server import convert
from toolwire.server.app import Server
from toolwire.server.errors import InvalidRequest
from toolwire.server.settings import Limits, ServerSettings
from toolwire.v1 import chat_pb2 as pb
from toolwire.v1 import chat_pb2_grpc

PACED_WORDS = ["The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog, ", "twice."]
"""The chunks of tests/scripts/paced.json, 40 ms apart."""
LONG = 60.0
"""A window no test waits for (the call's deadline is far shorter): what arrives, arrived without it."""


def window(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def texts(events: list[pb.ChatResponse]) -> list[str]:
    return [event.text_delta.text for event in events if event.HasField("text_delta")]


# --- the checks ------------------------------------------------------------------------------------


def converted(**fields) -> float:
    start = start_request("scripted/echo", tools=(), **fields).start
    return convert.chat_request_from_proto(start, ServerSettings()).text_coalesce_window_seconds


def test_an_unset_window_is_zero_and_a_set_one_is_kept():
    assert converted() == 0.0
    assert converted(text_coalesce_window=window(0.05)) == pytest.approx(0.05)
    assert converted(text_coalesce_window=window(1.0)) == 1.0  # the default limit itself


@pytest.mark.parametrize("seconds", [-0.01, -5.0, 1.001, 30.0])
def test_a_negative_or_too_long_window_is_refused_with_what_to_send(seconds):
    with pytest.raises(InvalidRequest) as refused:
        converted(text_coalesce_window=window(seconds))
    message = str(refused.value)
    assert "start.text_coalesce_window" in message and "use 0 (unset: no window) to 1 s" in message


def test_the_limit_comes_from_the_settings():
    start = start_request("scripted/echo", text_coalesce_window=window(2.5)).start
    settings = ServerSettings(limits=Limits(max_text_coalesce_window_seconds=3.0))
    assert convert.chat_request_from_proto(start, settings).text_coalesce_window_seconds == 2.5


async def test_an_invalid_window_ends_the_chat_with_invalid_argument(stub):
    request = start_request("scripted/paced", tools=(), text_coalesce_window=window(-1))
    _, code, details = await run_chat(stub, request, answer=False)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "start.text_coalesce_window is -1 s" in details


# --- over gRPC -------------------------------------------------------------------------------------


def script(*turns: list[dict[str, object]]) -> dict[str, object]:
    return {"turns": [{"chunks": chunks} for chunks in turns]}


HELD = [{"text": "Let me "}, {"delay_ms": 20}, {"text": "check "}, {"delay_ms": 20}, {"text": "the weather."}]
"""Three chunks spaced so that without a window none queues behind another's write."""
TOOL_CALL = {
    "tool_call": {"index": 0, "id": "call_1", "name": "get_weather", "arguments": '{"location": "Paris"}'}
}


@pytest.fixture
def server_settings(tmp_path) -> ServerSettings:
    """The test scripts, a window limit of 120 s, and scripted/held_then_tool and held_then_unavailable."""
    answer = [{"text": "It is "}, {"text": "sunny."}]
    (tmp_path / "held_then_tool.json").write_text(json.dumps(script([*HELD, TOOL_CALL], answer)))
    failure = {"error": {"code": "UNAVAILABLE", "message": "the model is overloaded"}}
    (tmp_path / "held_then_unavailable.json").write_text(json.dumps(script([*HELD, failure])))
    (tmp_path / "held_then_stalled.json").write_text(json.dumps(script([*HELD, {"delay_ms": 30_000}])))
    return ServerSettings(
        listen="127.0.0.1:0",
        script_dirs=(SCRIPTS, tmp_path),
        limits=Limits(max_text_coalesce_window_seconds=120.0),
    )


async def test_with_a_window_the_same_text_arrives_in_fewer_messages(stub):
    request = start_request("scripted/paced", tools=(), text_coalesce_window=window(0.2))
    events, code, _ = await run_chat(stub, request)
    assert code is grpc.StatusCode.OK
    assert "".join(texts(events)) == "".join(PACED_WORDS) == events[-1].finish.text
    assert len(texts(events)) < len(PACED_WORDS), texts(events)
    assert texts(events)[0] == PACED_WORDS[0], "the first text waited for the window"


async def test_without_a_window_each_paced_chunk_is_a_message_of_its_own(stub):
    events, code, _ = await run_chat(stub, start_request("scripted/paced", tools=()))
    assert code is grpc.StatusCode.OK
    assert texts(events) == PACED_WORDS


async def test_held_text_goes_out_before_the_tool_request_and_the_finish_without_waiting(stub):
    request = start_request(
        "scripted/held_then_tool", tools=[WEATHER_TOOL], text_coalesce_window=window(LONG)
    )
    events, code, _ = await run_chat(stub, request, deadline_seconds=10)
    assert code is grpc.StatusCode.OK
    kinds = [event.WhichOneof("event") for event in events]
    tool_at = kinds.index("tool_request")
    assert kinds[0] == "started" and kinds[-1] == "finish" and kinds.count("tool_request") == 1
    before, after = texts(events[:tool_at]), texts(events[tool_at:])
    assert "".join(before) == "Let me check the weather." and "".join(after) == "It is sunny."
    assert len(before) < 3, f"nothing was held: {before}"


async def test_held_text_arrives_before_an_error_status(stub):
    request = start_request("scripted/held_then_unavailable", tools=(), text_coalesce_window=window(LONG))
    events, code, details = await run_chat(stub, request, deadline_seconds=10)
    assert (code, details) == (grpc.StatusCode.UNAVAILABLE, "the model is overloaded")
    assert "".join(texts(events)) == "Let me check the weather."


async def read_until_the_status(
    call, first_text=lambda: None
) -> tuple[list[pb.ChatResponse], grpc.StatusCode]:
    """Every event up to the status, calling `first_text` when the first TextDelta has arrived."""
    events: list[pb.ChatResponse] = []
    try:
        async for event in call:
            events.append(event)
            if len(texts(events)) == 1 and event.HasField("text_delta"):
                first_text()
    except grpc.aio.AioRpcError as error:
        return events, error.code()
    return events, grpc.StatusCode.OK


@pytest.mark.parametrize("ended_by", ["the chat deadline", "a shutdown"])
async def test_held_text_arrives_before_the_status_when_the_server_ends_the_chat(server_settings, ended_by):
    """The server's own end of a chat (its deadline, a shutdown) cancels the chat; what the chat had
    accepted still reaches the client, which is there, before the status."""
    deadline = 0.5 if ended_by == "the chat deadline" else 0
    server = Server(dataclasses.replace(server_settings, chat_deadline_seconds=deadline))
    await server.start()
    stopping: list[asyncio.Task[None]] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = chat_pb2_grpc.ChatServiceStub(channel).Chat(timeout=10)
            await call.write(
                start_request("scripted/held_then_stalled", tools=(), text_coalesce_window=window(LONG))
            )
            if ended_by == "a shutdown":  # running chats get 0.2 s, then end with UNAVAILABLE
                events, code = await read_until_the_status(
                    call, lambda: stopping.append(asyncio.create_task(server.stop(grace_seconds=0.2)))
                )
            else:
                events, code = await read_until_the_status(call)
    finally:
        await asyncio.gather(*stopping)
        await server.stop(grace_seconds=0)
    expected = (
        grpc.StatusCode.DEADLINE_EXCEEDED if ended_by == "the chat deadline" else grpc.StatusCode.UNAVAILABLE
    )
    assert code is expected
    assert "".join(texts(events)) == "Let me check the weather."
    assert len(texts(events)) == 2, "the window held the text that followed the first"

"""The gRPC surface, in process: statuses for every protocol error, health, reflection, cancellation, load."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import SCRIPTS, WEATHER_TOOL, start_request
from toolwire.server.settings import Limits, ServerSettings
from toolwire.v1 import chat_pb2 as pb

OK = grpc.StatusCode.OK


async def run_chat(stub, *requests, answer=True, deadline_seconds=10):
    """Sends `requests`, answers every ToolRequest (if `answer`), returns (events, status code, details)."""
    call = stub.Chat(timeout=deadline_seconds)
    events = []
    try:
        for request in requests:  # the server may end the call before a write completes
            await call.write(request)
        async for response in call:
            events.append(response)
            if answer and response.HasField("tool_request"):
                result = pb.ToolResult(tool_call_id=response.tool_request.tool_call_id, content="sunny")
                await call.write(pb.ChatRequest(tool_result=result))
            if response.HasField("finish"):
                await call.done_writing()
    except grpc.aio.AioRpcError as error:
        return events, error.code(), error.details()
    return events, await call.code(), await call.details()


async def test_weather_chat_over_grpc(stub):
    events, code, _ = await run_chat(stub, start_request("scripted/weather"))
    assert code is OK
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[0] == "started" and kinds[-1] == "finish"
    assert "tool_request" in kinds and kinds.index("tool_request") < kinds.index("finish")
    finish = events[-1].finish
    assert finish.reason == pb.FINISH_REASON_STOP
    assert (finish.text, list(finish.tools_called), finish.rounds) == (
        "It is sunny in Paris.",
        ["get_weather"],
        2,
    )
    assert finish.usage.HasField("input_tokens") and finish.usage.input_tokens == 52
    assert finish.duration.ToTimedelta().total_seconds() > 0
    assert [m.role for m in finish.messages] == [pb.ROLE_ASSISTANT, pb.ROLE_TOOL, pb.ROLE_ASSISTANT]
    assert finish.messages[1].content == "sunny"


async def test_unknown_usage_is_unset_on_the_wire(stub):
    events, code, _ = await run_chat(stub, start_request("scripted/echo", tools=()))
    assert code is OK
    assert not events[-1].finish.usage.HasField("input_tokens")


async def test_list_models(stub):
    response = await stub.ListModels(pb.ListModelsRequest())
    ids = [model.id for model in response.models]
    assert ids == sorted(ids)
    assert {"scripted/echo", "scripted/weather", "scripted/parallel"} <= set(ids)
    assert all(model.provider == "scripted" and model.description for model in response.models)


async def test_health_reports_serving(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "toolwire.v1.ChatService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(channel):
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = reflection.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    response = await call.read()
    await call.done_writing()
    names = {service.name for service in response.list_services_response.service}
    assert {"toolwire.v1.ChatService", "grpc.health.v1.Health"} <= names


BAD_SCHEMA = pb.ToolDefinition(name="broken", parameters_json_schema='{"type": "object", "properties": 5}')


@pytest.mark.parametrize(
    ("requests", "code", "message"),
    [
        (
            [pb.ChatRequest(tool_result=pb.ToolResult(tool_call_id="x"))],
            "INVALID_ARGUMENT",
            "first message must be start",
        ),
        ([pb.ChatRequest()], "INVALID_ARGUMENT", "neither start nor tool_result"),
        ([start_request("")], "INVALID_ARGUMENT", "start.model is empty"),
        ([start_request("weather")], "INVALID_ARGUMENT", "not of the form provider/model-name"),
        ([start_request("acme/x")], "NOT_FOUND", "unknown provider 'acme'"),
        ([start_request("scripted/nope")], "NOT_FOUND", "no script named 'nope'"),
        ([start_request("scripted/echo", tools=[BAD_SCHEMA])], "INVALID_ARGUMENT", "not a valid JSON Schema"),
        (
            [
                start_request(
                    "scripted/echo", tools=[pb.ToolDefinition(name="t", parameters_json_schema="{oops")]
                )
            ],
            "INVALID_ARGUMENT",
            "is not valid JSON",
        ),
        (
            [
                start_request(
                    "scripted/echo",
                    tools=[pb.ToolDefinition(name="t", parameters_json_schema='{"type": "array"}')],
                )
            ],
            "INVALID_ARGUMENT",
            "must describe an object",
        ),
        (
            [start_request("scripted/echo", tools=[WEATHER_TOOL, WEATHER_TOOL])],
            "INVALID_ARGUMENT",
            "two tools are named",
        ),
        (
            [start_request("scripted/echo", tools=[pb.ToolDefinition(name="bad name!")])],
            "INVALID_ARGUMENT",
            "not a valid tool name",
        ),
        ([start_request("scripted/echo", messages=[])], "INVALID_ARGUMENT", "start.messages is empty"),
        (
            [start_request("scripted/echo", messages=[pb.Message(content="hi")])],
            "INVALID_ARGUMENT",
            "role is not set",
        ),
        (
            [
                start_request(
                    "scripted/echo", messages=[pb.Message(role=pb.ROLE_TOOL, tool_call_id="c", content="x")]
                )
            ],
            "INVALID_ARGUMENT",
            "which no earlier assistant message called",
        ),
        ([start_request("scripted/echo", max_tool_rounds=-1)], "INVALID_ARGUMENT", "max_tool_rounds is -1"),
        (
            [
                start_request(
                    "scripted/echo",
                    tool_choice=pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_TOOL, tool_name="nope"),
                )
            ],
            "INVALID_ARGUMENT",
            "not among start.tools",
        ),
        (
            [start_request("scripted/echo"), start_request("scripted/echo")],
            "INVALID_ARGUMENT",
            "a second start",
        ),
        (
            [
                start_request("scripted/slow"),
                pb.ChatRequest(tool_result=pb.ToolResult(tool_call_id="never_issued")),
            ],
            "INVALID_ARGUMENT",
            "which this chat never sent",
        ),
        ([start_request("scripted/unavailable")], "UNAVAILABLE", "the model is overloaded"),
        (
            [start_request("scripted/echo", tools=[], max_tool_rounds=1000)],
            "INVALID_ARGUMENT",
            "use 0 (server default) to 100",
        ),
    ],
)
async def test_protocol_errors_end_the_stream_with_a_clear_status(stub, requests, code, message):
    _, status, details = await run_chat(stub, *requests, answer=False)
    assert status is grpc.StatusCode[code]
    assert message in details


async def test_a_script_that_runs_out_of_turns_is_failed_precondition(stub):
    events, code, details = await run_chat(stub, start_request("scripted/short"))
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert "has 1 turn(s) but the chat needed model call 2" in details
    assert [event.tool_request.tool_call_id for event in events if event.HasField("tool_request")] == ["t1"]


async def test_unknown_tool_is_answered_by_the_server(stub):
    events, code, _ = await run_chat(stub, start_request("scripted/unknown_tool"))
    assert code is OK
    assert not any(event.HasField("tool_request") for event in events)
    rejected = [event.tool_call_rejected for event in events if event.HasField("tool_call_rejected")]
    assert [r.name for r in rejected] == ["launch_rocket"]
    finish = events[-1].finish
    assert finish.messages[1].is_error and "Unknown tool 'launch_rocket'" in finish.messages[1].content


async def test_max_tool_rounds_over_grpc(stub):
    events, code, _ = await run_chat(stub, start_request("scripted/loop", max_tool_rounds=2))
    assert code is OK
    finish = events[-1].finish
    assert (finish.reason, finish.rounds, len(finish.tools_called)) == (
        pb.FINISH_REASON_MAX_TOOL_ROUNDS,
        3,
        2,
    )


@pytest.mark.parametrize(
    "server_settings",
    [ServerSettings(listen="127.0.0.1:0", limits=Limits(max_request_bytes=64 * 1024, max_messages=3))],
)
async def test_size_limits(stub, server_settings):
    huge = start_request("scripted/echo", messages=[pb.Message(role=pb.ROLE_USER, content="x" * 100_000)])
    _, code, details = await run_chat(stub, huge, answer=False)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    many = start_request("scripted/echo", messages=[pb.Message(role=pb.ROLE_USER, content="hi")] * 4)
    _, code, details = await run_chat(stub, many, answer=False)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "the limit is 3" in details
    _, code, _ = await run_chat(stub, start_request("scripted/echo", tools=()))
    assert code is OK  # the server is still fine


async def test_client_cancel_stops_the_model_and_the_server_keeps_serving(server, stub):
    activity = server.registry._providers["scripted"].activity
    call = stub.Chat()
    await call.write(start_request("scripted/slow"))
    while True:
        response = await call.read()
        if response.HasField("text_delta"):
            break
    call.cancel()
    for _ in range(200):  # the server notices the cancel asynchronously
        if activity.streams_closed_early:
            break
        await asyncio.sleep(0.01)
    assert activity.streams_closed_early == 1 and activity.streams_completed == 0
    _, code, _ = await run_chat(stub, start_request("scripted/weather"))
    assert code is OK


async def test_fifty_concurrent_chats_all_complete(stub):
    outcomes = await asyncio.gather(*(run_chat(stub, start_request("scripted/parallel")) for _ in range(50)))
    assert all(code is OK for _, code, _ in outcomes)
    assert all(
        list(events[-1].finish.tools_called) == ["get_weather", "get_time"] for events, _, _ in outcomes
    )
    chat_ids = {events[0].started.chat_id for events, _, _ in outcomes}
    assert len(chat_ids) == 50


async def test_tool_timeout_from_the_request_abandons_the_call(stub):
    timeout = pb.ChatStart().tool_timeout.__class__(nanos=200_000_000)
    events, code, _ = await run_chat(
        stub, start_request("scripted/weather", tool_timeout=timeout), answer=False
    )
    assert code is OK
    abandoned = [event.tool_call_abandoned for event in events if event.HasField("tool_call_abandoned")]
    assert [a.tool_call_id for a in abandoned] == ["call_1"]
    assert events[-1].finish.messages[1].is_error


async def test_unexpected_errors_are_internal_and_leak_nothing(server, stub, monkeypatch):
    scripted = server.registry._providers["scripted"]

    def explode(model_name):
        raise RuntimeError("api key sk-secret-123 rejected")

    monkeypatch.setattr(scripted, "resolve", explode)
    _, code, details = await run_chat(stub, start_request("scripted/weather"), answer=False)
    assert code is grpc.StatusCode.INTERNAL
    assert "sk-secret" not in details and "log" in details


async def test_health_turns_not_serving_on_shutdown(server, channel):
    health = health_pb2_grpc.HealthStub(channel)
    await server.begin_shutdown()
    for service in ("", "toolwire.v1.ChatService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize(
    "server_settings",
    [
        ServerSettings(
            listen="127.0.0.1:0", script_dirs=(SCRIPTS,), limits=Limits(max_request_bytes=64 * 1024)
        )
    ],
)
async def test_an_oversized_message_mid_chat_is_no_internal_error(stub, server_settings, caplog):
    """gRPC answers a message over max_request_bytes itself (RESOURCE_EXHAUSTED) and ends the call
    under the running chat: the chat's next write fails. That is the call ending, not a server bug."""
    caplog.set_level(logging.INFO)
    call = stub.Chat(timeout=10)
    await call.write(start_request("scripted/slow"))
    await call.write(pb.ChatRequest(tool_result=pb.ToolResult(tool_call_id="t", content="x" * 100_000)))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in call:
            pass
    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    for _ in range(200):  # the chat notices at its next write, a moment later
        lines = [record for record in caplog.records if record.name == "toolwire.server.chat"]
        if lines:
            break
        await asyncio.sleep(0.05)
    assert [record.status for record in lines] == ["CANCELLED"]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


NOT_UTF8 = start_request("scripted/echo").SerializeToString().replace(b"scripted/echo", b"scripted/ech\xff")


@pytest.mark.parametrize(
    "raw", [b"\xff\xff", start_request("scripted/echo").SerializeToString() + b"\xff", NOT_UTF8]
)
async def test_a_message_that_is_not_a_chat_request_is_invalid_argument(channel, raw, caplog):
    chat = channel.stream_stream(
        "/toolwire.v1.ChatService/Chat",
        request_serializer=lambda message: message,
        response_deserializer=pb.ChatResponse.FromString,
    )
    call = chat(timeout=10)
    await call.write(raw)
    await call.done_writing()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in call:
            pass
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a toolwire.v1.ChatRequest" in raised.value.details()
    assert "or a string field is not UTF-8" in raised.value.details()
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]

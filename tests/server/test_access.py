"""In process: the bearer token, reflection switched off, the concurrent-chat cap, the per-chat
deadline and the shutdown drain, each with the status and message a client gets."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import SCRIPTS, start_request
from tests.server.test_grpc import run_chat
from toolwire.client import Client
from toolwire.client.errors import ToolwireError
from toolwire.server import refusal
from toolwire.server.app import Server
from toolwire.server.settings import ServerSettings
from toolwire.v1 import chat_pb2 as pb
from toolwire.v1 import chat_pb2_grpc

TOKEN = "tw-test-token-0123456789"
BASE = ServerSettings(listen="127.0.0.1:0", script_dirs=(SCRIPTS,))


@pytest.fixture
async def make_server():
    servers: list[Server] = []

    async def make(**changes) -> Server:
        server = Server(dataclasses.replace(BASE, **changes))
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop(grace_seconds=0)


async def first_text(call) -> None:
    """Reads until the chat has streamed its first text (it is running)."""
    while not (await call.read()).HasField("text_delta"):
        pass


async def read_to_the_end(call) -> None:
    while (await call.read()) is not grpc.aio.EOF:
        pass


async def test_without_the_token_every_call_is_unauthenticated(make_server, monkeypatch):
    monkeypatch.setattr(refusal, "FIRST_MESSAGE_SECONDS", 0.2)  # the chat below sends no start
    server = await make_server(auth_token=TOKEN)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListModels(pb.ListModelsRequest())
        assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "missing or wrong bearer token: set the authorization metadata" in raised.value.details()
        # No write before the status: the refusal needs no request. (A client that writes first gets
        # the same status: tests/e2e/test_refusals.py.)
        _, code, details = await run_chat(stub)
        assert code is grpc.StatusCode.UNAUTHENTICATED and TOKEN not in details
        wrong = (("authorization", "Bearer not-the-token"),)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListModels(pb.ListModelsRequest(), metadata=wrong)
        assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_reflection_needs_the_token_and_health_does_not(make_server, monkeypatch):
    monkeypatch.setattr(refusal, "FIRST_MESSAGE_SECONDS", 0.2)  # the stream below sends no request
    server = await make_server(auth_token=TOKEN)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(health_pb2.HealthCheckRequest())
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = reflection.ServerReflectionInfo()  # refused before any request (see above)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()
        assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
async def test_the_client_with_the_token_is_served(make_server, scheme):
    server = await make_server(auth_token=TOKEN)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        response = await stub.ListModels(
            pb.ListModelsRequest(), metadata=(("authorization", f"{scheme} {TOKEN}"),)
        )
        assert response.models
    async with Client(f"127.0.0.1:{server.port}", token=TOKEN) as client:
        assert await client.list_models()
        finish = await client.run("scripted/echo", "hello there")
        assert finish.text == "hello there"
    async with Client(f"127.0.0.1:{server.port}", token="wrong-token") as client:
        with pytest.raises(ToolwireError) as raised:
            await client.run("scripted/echo", "hello")
        assert raised.value.code is grpc.StatusCode.UNAUTHENTICATED


async def list_services(call) -> None:
    """Asks a reflection stream for the services. The server may end an unknown method's call before
    the request is written, so its status can come with the write or with the read."""
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await call.read()


async def test_reflection_can_be_switched_off(make_server):
    server = await make_server(reflection=False)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await list_services(call)
        assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_past_the_cap_a_new_chat_is_resource_exhausted(make_server):
    server = await make_server(max_concurrent_chats=2)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        running = [stub.Chat(timeout=30) for _ in range(2)]
        for call in running:
            await call.write(start_request("scripted/slow", tools=()))
            await first_text(call)
        _, code, details = await run_chat(stub, start_request("scripted/echo", tools=()))
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "2 chats are running, the most this server takes (max_concurrent_chats)" in details
        running[0].cancel()
        for _ in range(200):  # the server sees the cancel asynchronously
            if server.gate.running < 2:
                break
            await asyncio.sleep(0.01)
        _, code, _ = await run_chat(stub, start_request("scripted/echo", tools=()))
        assert code is grpc.StatusCode.OK
        running[1].cancel()


async def test_a_chat_past_the_deadline_ends_deadline_exceeded_and_its_model_stream_closes(make_server):
    server = await make_server(chat_deadline_seconds=0.3)
    activity = server.registry._providers["scripted"].activity
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        events, code, details = await run_chat(
            chat_pb2_grpc.ChatServiceStub(channel), start_request("scripted/slow")
        )
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "ran longer than this server allows (chat_deadline_seconds = 0.3)" in details
    assert any(event.HasField("text_delta") for event in events)
    assert activity.streams_closed_early == 1


async def test_shutdown_refuses_new_chats_and_ends_running_ones_with_unavailable(make_server):
    server = await make_server()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        running = stub.Chat(timeout=30)
        await running.write(start_request("scripted/slow", tools=()))
        await first_text(running)
        await server.begin_shutdown()
        _, code, details = await run_chat(stub, start_request("scripted/echo", tools=()))
        assert code is grpc.StatusCode.UNAVAILABLE and "the server is shutting down" in details
        stopping = asyncio.create_task(server.stop(grace_seconds=0.2))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await read_to_the_end(running)
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
        assert (
            raised.value.details()
            == "the server shut down before the chat finished; retry on another instance"
        )
        await stopping


async def test_a_chat_that_finishes_within_the_grace_is_ok(make_server):
    server = await make_server()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        call = stub.Chat(timeout=30)
        await call.write(start_request("scripted/weather"))
        tool_request = None
        while tool_request is None:
            response = await call.read()
            if response.HasField("tool_request"):
                tool_request = response.tool_request
        stopping = asyncio.create_task(server.stop(grace_seconds=20))
        await asyncio.sleep(0)  # the drain has begun: the chat goes on
        result = pb.ToolResult(tool_call_id=tool_request.tool_call_id, content="sunny")
        await call.write(pb.ChatRequest(tool_result=result))
        events = []
        while (response := await call.read()) is not grpc.aio.EOF:
            events.append(response)
            if response.HasField("finish"):
                await call.done_writing()
        assert events[-1].HasField("finish") and await call.code() is grpc.StatusCode.OK
        await stopping


async def test_a_refused_chat_that_sends_nothing_is_refused_after_the_wait(make_server, monkeypatch):
    """A refusal reads the client's start first (refusal.py), but does not wait for it forever."""
    monkeypatch.setattr(refusal, "FIRST_MESSAGE_SECONDS", 0.2)
    server = await make_server(auth_token=TOKEN)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = chat_pb2_grpc.ChatServiceStub(channel).Chat(timeout=60)
        # UNAUTHENTICATED, not DEADLINE_EXCEEDED: the server stopped waiting and refused
        assert await call.code() is grpc.StatusCode.UNAUTHENTICATED

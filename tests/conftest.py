"""Shared fixtures: an in-process toolwire server on a free loopback port, with the test scripts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from toolwire.server.app import Server
from toolwire.server.settings import ServerSettings
from toolwire.v1 import chat_pb2 as pb
from toolwire.v1 import chat_pb2_grpc

SCRIPTS = Path(__file__).parent / "scripts"

WEATHER_TOOL = pb.ToolDefinition(
    name="get_weather",
    description="Current weather for a place.",
    parameters_json_schema=(
        '{"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}'
    ),
)
TIME_TOOL = pb.ToolDefinition(
    name="get_time",
    description="Local time in a city.",
    parameters_json_schema='{"type": "object", "properties": {"city": {"type": "string"}}}',
)


def start_request(model: str, tools=(WEATHER_TOOL, TIME_TOOL), **fields) -> pb.ChatRequest:
    fields.setdefault("messages", [pb.Message(role=pb.ROLE_USER, content="What is the weather in Paris?")])
    return pb.ChatRequest(start=pb.ChatStart(model=model, tools=list(tools), **fields))


@pytest.fixture
def server_settings() -> ServerSettings:
    return ServerSettings(listen="127.0.0.1:0", script_dirs=(SCRIPTS,))


@pytest.fixture
async def server(server_settings) -> AsyncIterator[Server]:
    running = Server(server_settings)
    await running.start()
    yield running
    await running.stop(grace_seconds=0)


@pytest.fixture
async def channel(server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened


@pytest.fixture
def stub(channel) -> chat_pb2_grpc.ChatServiceStub:
    return chat_pb2_grpc.ChatServiceStub(channel)

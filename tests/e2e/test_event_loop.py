"""`toolwire serve` on uvloop (the default) and on asyncio's own loop (`--no-uvloop`): grpc.aio
serves chats and health checks on both, and the start-up line names the loop."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.conftest import start_request
from tests.e2e.conftest import start_server, stop_server
from tests.e2e.test_health_command import run_health
from tests.server.test_grpc import run_chat
from toolwire.v1 import chat_pb2_grpc


@pytest.mark.parametrize(("flags", "loop"), [((), "uvloop"), (("--no-uvloop",), "asyncio")])
async def test_chats_and_health_checks_on_each_loop(flags, loop):
    server = start_server(*flags)
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = chat_pb2_grpc.ChatServiceStub(channel)
            results = await asyncio.gather(
                *(run_chat(stub, start_request("scripted/weather")) for _ in range(10))
            )
        assert [code for _, code, _ in results] == [grpc.StatusCode.OK] * 10
        health = await asyncio.to_thread(run_health, "--address", server.target)
        assert health.returncode == 0, health.stderr
        assert f"; {loop} event loop)" in server.log_text()
    finally:
        assert stop_server(server) == 0

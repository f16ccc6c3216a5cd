"""SIGTERM on a real `toolwire serve` process: health NOT_SERVING and new chats UNAVAILABLE at once,
running chats go on through the grace, those still running after it end with a clear UNAVAILABLE
status (not a reset stream), and the process exits 0. Also the Unix socket's life cycle."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import start_request
from tests.e2e.conftest import TOOLWIRE, start_server, stop_server
from tests.e2e.test_health_command import run_health
from tests.server.test_grpc import run_chat
from toolwire.v1 import chat_pb2 as pb
from toolwire.v1 import chat_pb2_grpc

WEATHER = "scripted/weather"
SHUT_DOWN = "the server shut down before the chat finished; retry on another instance"


@contextlib.contextmanager
def serving(*flags: str):
    """A server for one test, stopped even when the test fails half-way (no process or pipe left)."""
    server = start_server(*flags)
    try:
        yield server
    finally:
        if not server.log.closed:  # the test did not reach its own stop_server
            stop_server(server)


async def read_until(call, field: str):
    while True:
        response = await call.read()
        assert response is not grpc.aio.EOF, f"the stream ended before a {field}"
        if response.HasField(field):
            return response


async def assert_draining(channel: grpc.aio.Channel, stub) -> None:
    """Health NOT_SERVING and a new chat refused with UNAVAILABLE (the server answers: no reset)."""
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(500):  # the signal is handled asynchronously; bounded
        status = (await health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status
        if status == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        await asyncio.sleep(0.01)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    _, code, details = await run_chat(stub, start_request("scripted/echo", tools=()), deadline_seconds=5)
    assert code is grpc.StatusCode.UNAVAILABLE and "the server is shutting down" in details


async def test_a_chat_running_at_sigterm_finishes_within_a_long_grace():
    with serving("--shutdown-grace-seconds", "30") as server:
        await _finishes_within_a_long_grace(server)


async def _finishes_within_a_long_grace(server) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        call = stub.Chat(timeout=30)
        await call.write(start_request(WEATHER))
        tool_request = (await read_until(call, "tool_request")).tool_request
        server.process.send_signal(signal.SIGTERM)
        await assert_draining(channel, stub)
        unhealthy = await asyncio.to_thread(run_health, "--address", server.target)
        assert (unhealthy.returncode, unhealthy.stdout.strip()) == (1, "NOT_SERVING")
        result = pb.ToolResult(tool_call_id=tool_request.tool_call_id, content="sunny")
        await call.write(pb.ChatRequest(tool_result=result))
        finish = await read_until(call, "finish")
        await call.done_writing()
        assert finish.finish.text == "It is sunny in Paris." and await call.code() is grpc.StatusCode.OK
    assert await asyncio.to_thread(server.process.wait, 15) == 0
    assert stop_server(server) == 0


async def test_a_chat_still_running_after_a_short_grace_ends_unavailable():
    with serving("--shutdown-grace-seconds", "0.5") as server:
        await _ends_unavailable_after_a_short_grace(server)


async def _ends_unavailable_after_a_short_grace(server) -> None:
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        call = stub.Chat(timeout=30)
        await call.write(start_request("scripted/slow", tools=()))
        await read_until(call, "text_delta")
        server.process.send_signal(signal.SIGTERM)
        await assert_draining(channel, stub)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()  # the model is paused mid-stream: the next thing is the status
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
        assert raised.value.details() == SHUT_DOWN
    assert await asyncio.to_thread(server.process.wait, 15) == 0
    log = server.log_text()
    assert "outcome=failed status=UNAVAILABLE" in log and "model=scripted/slow" in log
    assert stop_server(server) == 0


def test_a_stale_socket_is_replaced_and_a_live_one_is_refused():
    with tempfile.TemporaryDirectory(prefix="tw-") as folder:
        path = Path(folder) / "toolwire.sock"
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(path))
        stale.close()  # the file stays; nothing answers on it
        first = start_server(listen=f"unix:{path}")
        try:
            assert first.target == f"unix:{path}"
            second = start_server_expecting_failure(f"unix:{path}")
            assert second[0] == 1 and f"unix:{path}: another process is listening on it" in second[1]
        finally:
            assert stop_server(first) == 0
        assert not path.exists()
        path.write_text("not a socket")
        code, stderr = start_server_expecting_failure(f"unix:{path}")
        assert code == 1 and "the file exists and is not a socket" in stderr


def start_server_expecting_failure(listen: str) -> tuple[int, str]:
    result = subprocess.run(
        [str(TOOLWIRE), "serve", "--listen", listen], capture_output=True, text=True, timeout=60
    )
    return result.returncode, result.stderr


async def test_every_address_is_announced_first_one_first():
    with tempfile.TemporaryDirectory(prefix="tw-") as folder:
        path = Path(folder) / "toolwire.sock"
        server = start_server("--listen", f"unix:{path}")
        try:
            assert server.target.startswith("127.0.0.1:")
            second_line = await asyncio.to_thread(server.process.stdout.readline)
            assert second_line.strip() == f"toolwire listening on unix:{path}"
            for address in (server.target, f"unix:{path}"):
                health = await asyncio.to_thread(run_health, "--address", address)
                assert health.returncode == 0, health.stderr
        finally:
            assert stop_server(server) == 0

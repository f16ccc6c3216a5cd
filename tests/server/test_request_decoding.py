"""In process: bytes that are not a method's request message get INVALID_ARGUMENT naming the message,
on every unary method (grpc.aio's own answer is UNKNOWN and a traceback in the log); well-formed
calls, and the token check, are as before."""

from __future__ import annotations

import dataclasses
import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import SCRIPTS
from toolwire.server.app import Server
from toolwire.server.settings import ServerSettings
from toolwire.v1 import chat_pb2 as pb
from toolwire.v1 import chat_pb2_grpc

GARBAGE = b"\xff\xff\xff"
TOKEN = "tw-decoding-token-0123456789"


@pytest.fixture
async def server():
    settings = ServerSettings(listen="127.0.0.1:0", health_listen=("127.0.0.1:0",), script_dirs=(SCRIPTS,))
    server = Server(settings)
    await server.start()
    yield server
    await server.stop(grace_seconds=0)


def raw_call(channel: grpc.aio.Channel, method: str, streaming: bool = False):
    kind = channel.unary_stream if streaming else channel.unary_unary
    return kind(method, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)


async def finish(call) -> None:
    if isinstance(call, grpc.aio.UnaryStreamCall):
        async for _ in call:
            pass
    else:
        await call


async def refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await finish(call)
    return raised.value


@pytest.mark.parametrize(
    ("method", "streaming", "message"),
    [
        ("/toolwire.v1.ChatService/ListModels", False, "toolwire.v1.ListModelsRequest"),
        ("/grpc.health.v1.Health/Check", False, "grpc.health.v1.HealthCheckRequest"),
        ("/grpc.health.v1.Health/Watch", True, "grpc.health.v1.HealthCheckRequest"),
    ],
)
async def test_an_undecodable_request_is_invalid_argument_naming_the_message(
    server, method, streaming, message, caplog
):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        error = await refused(raw_call(channel, method, streaming)(GARBAGE, timeout=10))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert f"the request is not a {message}" in error.details()
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_the_health_only_address_answers_the_same(server):
    [address] = server.health_addresses
    async with grpc.aio.insecure_channel(address) as channel:
        error = await refused(raw_call(channel, "/grpc.health.v1.Health/Check")(GARBAGE, timeout=10))
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_well_formed_calls_are_served_and_the_token_still_checked(server):
    with_token = Server(dataclasses.replace(server.settings, health_listen=(), auth_token=TOKEN))
    await with_token.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{with_token.port}") as channel:
            stub = chat_pb2_grpc.ChatServiceStub(channel)
            authorized = (("authorization", f"Bearer {TOKEN}"),)
            models = await stub.ListModels(pb.ListModelsRequest(), metadata=authorized, timeout=10)
            assert "scripted/echo" in [model.id for model in models.models]
            error = await refused(stub.ListModels(pb.ListModelsRequest(), timeout=10))
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED
            error = await refused(
                raw_call(channel, "/toolwire.v1.ChatService/ListModels")(GARBAGE, timeout=10)
            )
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED  # the token first, not UNKNOWN
    finally:
        await with_token.stop(grace_seconds=0)

"""In process: `health_listen`, the plaintext address that serves grpc.health.v1 alone (for kubelet's
native gRPC probe when the chat API is on a Unix socket or behind TLS)."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import SCRIPTS
from tests.e2e.certificates import issue, make_ca
from toolwire.server.app import Server
from toolwire.server.settings import ServerSettings, TlsFiles
from toolwire.v1 import chat_pb2 as pb
from toolwire.v1 import chat_pb2_grpc

TOKEN = "tw-health-listen-token-0123"


@pytest.fixture
async def unix_server(tmp_path):
    """A server whose chat API is on a Unix socket only, with a token, and health on a TCP port."""
    settings = ServerSettings(
        listen=(f"unix:{tmp_path / 'toolwire.sock'}",),
        health_listen=("127.0.0.1:0",),
        script_dirs=(SCRIPTS,),
        auth_token=TOKEN,
    )
    server = Server(settings)
    await server.start()
    yield server
    await server.stop(grace_seconds=0)


def health_port(server: Server) -> int:
    [address] = server.health_addresses
    host, _, port = address.rpartition(":")
    assert host == "127.0.0.1"
    return int(port)


async def check(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    return response.status


async def test_the_health_address_answers_with_no_token_for_the_server_and_the_chat_service(unix_server):
    port = health_port(unix_server)
    assert await check(port) == health_pb2.HealthCheckResponse.SERVING
    assert await check(port, "toolwire.v1.ChatService") == health_pb2.HealthCheckResponse.SERVING


async def test_the_health_address_answers_check_but_not_watch_which_the_listen_address_serves(
    unix_server, tmp_path
):
    """No call there may hold a stream open: the address takes calls with no token."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port(unix_server)}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await watch.read()
        assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert raised.value.details() == (
            "Watch is served on the server's listen addresses; this health-only address (health_listen) "
            "answers Check, as probes use it"
        )
    [listen] = unix_server.addresses
    async with grpc.aio.insecure_channel(listen) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=5)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()


async def test_the_health_address_serves_nothing_else_and_says_where_it_is(unix_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port(unix_server)}") as channel:
        chat = chat_pb2_grpc.ChatServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await chat.ListModels(pb.ListModelsRequest(), timeout=5)
        assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert raised.value.details() == (
            "this address serves grpc.health.v1 only (the server's health_listen): call "
            "/toolwire.v1.ChatService/ListModels on one of the server's listen addresses"
        )
        call = chat.Chat(timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()
        assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        stream = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stream.read()
        assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_the_health_address_turns_not_serving_with_the_server_then_closes(unix_server):
    port = health_port(unix_server)
    await unix_server.begin_shutdown()
    assert await check(port) == health_pb2.HealthCheckResponse.NOT_SERVING
    await unix_server.stop(grace_seconds=0)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await check(port)
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_the_health_address_stays_plaintext_when_the_listen_address_uses_tls(tmp_path):
    """kubelet's gRPC probe speaks no TLS: the health address is how it probes a TLS server."""
    _, ca, ca_key = make_ca(tmp_path, "test-ca")
    pair = issue(tmp_path, "server", ca, ca_key, server=True)
    settings = ServerSettings(
        listen=("127.0.0.1:0",),
        health_listen=("127.0.0.1:0",),
        tls=TlsFiles(pair.cert_file, pair.key_file),
    )
    server = Server(settings)
    await server.start()
    try:
        assert await check(health_port(server)) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as raised:  # plaintext to the TLS port fails
            await check(server.port)
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(grace_seconds=0)


async def test_without_health_listen_there_is_no_second_server():
    server = Server(ServerSettings(listen=("127.0.0.1:0",)))
    await server.start()
    try:
        assert server.health_addresses == []
        assert await check(server.port) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(grace_seconds=0)

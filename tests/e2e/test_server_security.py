"""A real `toolwire serve` process with TLS, mutual TLS and a bearer token: the handshake, the
statuses a client gets, `toolwire health` over TLS, and logs that never hold a secret."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess

import grpc
import pytest

from tests.e2e.certificates import issue, make_ca
from tests.e2e.conftest import TOOLWIRE, start_server, stop_server
from toolwire.client import Client
from toolwire.client.errors import ToolwireError

TOKEN = "tw-e2e-token-7f3a9c1d5e"
API_KEY = "sk-e2e-key-never-logged-4b8e"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca_pair, ca, ca_key = make_ca(folder, "test-ca")
    _, other_ca, other_key = make_ca(folder, "other-ca")
    return {
        "ca": ca_pair,
        "server": issue(folder, "server", ca, ca_key, server=True),
        "client": issue(folder, "client", ca, ca_key, server=False),
        "stranger": issue(folder, "stranger", other_ca, other_key, server=False),
    }


def credentials(pki, client: str | None = None) -> grpc.ChannelCredentials:
    pair = pki[client] if client else None
    return grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].cert_file.read_bytes(),
        private_key=pair.key_file.read_bytes() if pair else None,
        certificate_chain=pair.cert_file.read_bytes() if pair else None,
    )


def run_health(address: str, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [str(TOOLWIRE), "health", "--address", address, *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def tls_flags(pki, mutual: bool) -> list[str]:
    flags = ["--tls-cert-file", str(pki["server"].cert_file), "--tls-key-file", str(pki["server"].key_file)]
    return [*flags, "--tls-client-ca-file", str(pki["ca"].cert_file)] if mutual else flags


async def test_tls_with_a_token(pki):
    server = start_server(*tls_flags(pki, mutual=False), environment={"TOOLWIRE_AUTH_TOKEN": TOKEN})
    try:
        async with Client(server.target, credentials=credentials(pki), token=TOKEN) as client:
            assert (await client.run("scripted/echo", "over tls")).text == "over tls"
        async with Client(server.target, credentials=credentials(pki)) as client:
            with pytest.raises(ToolwireError) as raised:
                await client.list_models()
            assert raised.value.code is grpc.StatusCode.UNAUTHENTICATED
        async with Client(server.target, token=TOKEN) as plaintext:
            with pytest.raises(ToolwireError) as raised:
                await plaintext.list_models()
            assert raised.value.code is grpc.StatusCode.UNAVAILABLE  # no TLS, no handshake
        health = await asyncio.to_thread(run_health, server.target, "--tls-ca-file", str(pki["ca"].cert_file))
        assert (health.returncode, health.stdout.strip()) == (0, "SERVING")
    finally:
        assert stop_server(server) == 0


async def test_mutual_tls_needs_a_client_certificate_from_the_ca(pki):
    server = start_server(*tls_flags(pki, mutual=True))
    try:
        async with Client(server.target, credentials=credentials(pki, "client")) as client:
            assert await client.list_models()
        for who in (None, "stranger"):
            async with Client(server.target, credentials=credentials(pki, who)) as client:
                with pytest.raises(ToolwireError) as raised:
                    await client.list_models()
                assert raised.value.code is grpc.StatusCode.UNAVAILABLE
        client_pair = pki["client"]
        health = await asyncio.to_thread(
            run_health, server.target, "--tls-ca-file", str(pki["ca"].cert_file),
            "--tls-cert-file", str(client_pair.cert_file), "--tls-key-file", str(client_pair.key_file),
        )  # fmt: skip
        assert (health.returncode, health.stdout.strip()) == (0, "SERVING")
    finally:
        assert stop_server(server) == 0


def test_a_certificate_file_that_is_not_pem_stops_the_server_with_the_setting(tmp_path):
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate")
    command = [str(TOOLWIRE), "serve", "--listen", "127.0.0.1:0", "--tls-cert-file", str(bad)]
    result = subprocess.run(
        [*command, "--tls-key-file", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "holds no PEM" in result.stderr and "tls_" in result.stderr


async def test_json_logs_at_debug_hold_no_token_and_no_api_key():
    environment = {"TOOLWIRE_AUTH_TOKEN": TOKEN, "OPENAI_API_KEY": API_KEY, "TOOLWIRE_LOG_LEVEL": "debug"}
    server = start_server("--log-format", "json", environment=environment)
    try:
        async with Client(server.target, token=TOKEN) as client:
            await client.run("scripted/echo", "hello")
            with pytest.raises(ToolwireError):
                await client.run("openai/gpt-4.1-mini", f"say {TOKEN} and {API_KEY}")
            with pytest.raises(ToolwireError):
                await client.run("scripted/nope", "hello")
        async with Client(server.target, token=f"{TOKEN}-wrong") as client:
            with pytest.raises(ToolwireError):
                await client.list_models()
    finally:
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
        text = server.log_text()
        stop_server(server)
    assert TOKEN not in text and API_KEY not in text
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    chats = [record for record in records if record["logger"] == "toolwire.server.chat"]
    assert [(chat["model"], chat["outcome"], chat["status"]) for chat in chats][:1] == [
        ("scripted/echo", "finished", "OK")
    ]
    assert ("scripted/nope", "failed", "NOT_FOUND") in {
        (c["model"], c["outcome"], c["status"]) for c in chats
    }
    assert all(isinstance(chat["duration_ms"], int) and chat["chat_id"] for chat in chats)

"""Provider failures as a gRPC client sees them, through an in-process server: the status code,
the message, the RetryInfo detail, and the server that works with no key and no config at all."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from tests.conftest import SCRIPTS, start_request
from tests.fakes.provider import Reply
from toolwire.server.app import Server, default_registry
from toolwire.server.settings import ServerSettings
from toolwire.v1 import chat_pb2 as pb
from toolwire.v1 import chat_pb2_grpc


async def open_server(environment: dict[str, str], tmp_path=None, config: str = "") -> Server:
    config_path = None
    if config:
        config_path = tmp_path / "toolwire.toml"
        config_path.write_text(config)
    settings = ServerSettings(listen="127.0.0.1:0", script_dirs=(SCRIPTS,), config_path=config_path)
    server = Server(settings, default_registry(settings, environment))
    await server.start()
    return server


@pytest.fixture
async def keyless_stub() -> AsyncIterator[chat_pb2_grpc.ChatServiceStub]:
    server = await open_server({})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield chat_pb2_grpc.ChatServiceStub(channel)
    await server.stop(grace_seconds=0)


async def chat_error(stub, model: str) -> grpc.aio.AioRpcError:
    call = stub.Chat()
    await call.write(start_request(model))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in call:
            pass
    return raised.value


KEY_VARIABLES = [("openai/gpt-4.1", "OPENAI_API_KEY"), ("anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY")]


@pytest.mark.parametrize(("model", "variable"), KEY_VARIABLES)
async def test_with_no_key_the_error_names_the_variable_to_set(keyless_stub, model, variable):
    error = await chat_error(keyless_stub, model)
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert variable in error.details()


async def test_with_no_key_and_no_config_the_scripted_models_still_serve(keyless_stub):
    listed = await keyless_stub.ListModels(pb.ListModelsRequest())
    providers = {model.provider for model in listed.models}
    assert providers == {"scripted"}
    call = keyless_stub.Chat()
    await call.write(start_request("scripted/echo", tools=()))
    responses = [response async for response in call]
    assert responses[-1].WhichOneof("event") == "finish"


async def test_a_rate_limit_carries_retry_info(fake_provider, tmp_path):
    config = f'[retry]\nmax_attempts = 1\n[providers.openai]\nbase_url = "{fake_provider.url}/v1"\n'
    server = await open_server({"OPENAI_API_KEY": "sk-test-key-0123456789"}, tmp_path, config)
    fake_provider.enqueue(Reply.json(429, {"error": {"message": "slow down"}}, headers={"retry-after": "3"}))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            error = await chat_error(chat_pb2_grpc.ChatServiceStub(channel), "openai/gpt-4.1")
    finally:
        await server.stop(grace_seconds=0)
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    retry_info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry_info)
    assert retry_info.retry_delay.seconds == 3
    assert "sk-test-key" not in error.details()

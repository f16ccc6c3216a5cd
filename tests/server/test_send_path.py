"""The send path over a real gRPC call, in process: text queued behind a write goes out merged and in
order, and text accepted before a chat fails reaches the client before the error status."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest

from tests.conftest import SCRIPTS, start_request
from toolwire.server.chat_events import ChatEvent, ChatFinished, ToolRequestOut
from toolwire.server.errors import CallEnded
from toolwire.server.models import scripted
from toolwire.server.servicer import GrpcChatStream
from toolwire.server.session import ChatSessions
from toolwire.server.settings import ServerSettings
from toolwire.v1 import chat_pb2 as pb

INTERNAL_MESSAGE = "internal error in the toolwire server; its log has the details"
CHUNKS = 2_000
WORDS = [f"w{index} " for index in range(CHUNKS)]


def text_script(then: dict[str, object] | None = None) -> dict[str, object]:
    """A turn of CHUNKS text chunks with no delay between them, then `then` (an error) if given."""
    chunks: list[dict[str, object]] = [{"text": word} for word in WORDS]
    if then is not None:
        chunks.append(then)
    return {"turns": [{"chunks": chunks}]}


async def read_all(stub, model: str) -> tuple[list[pb.ChatResponse], grpc.StatusCode, str]:
    call = stub.Chat(timeout=30)
    await call.write(start_request(model, tools=()))
    responses = []
    try:
        async for response in call:
            responses.append(response)
            if response.HasField("finish"):
                await call.done_writing()
    except grpc.aio.AioRpcError as error:
        return responses, error.code(), error.details()
    return responses, await call.code(), await call.details()


def joined_text(responses: list[pb.ChatResponse]) -> tuple[str, int]:
    deltas = [response.text_delta.text for response in responses if response.HasField("text_delta")]
    return "".join(deltas), len(deltas)


@pytest.fixture
def server_settings(tmp_path) -> ServerSettings:
    """The test scripts, and scripted/flood and scripted/flood_then_unavailable."""
    (tmp_path / "flood.json").write_text(json.dumps(text_script()))
    failing = text_script({"error": {"code": "UNAVAILABLE", "message": "the model is overloaded"}})
    (tmp_path / "flood_then_unavailable.json").write_text(json.dumps(failing))
    return ServerSettings(listen="127.0.0.1:0", script_dirs=(SCRIPTS, tmp_path))


async def test_text_queued_behind_a_write_goes_out_merged_and_in_order(stub):
    # The scripted model yields its chunks without waiting, so all but the first queue behind it.
    responses, code, _ = await read_all(stub, "scripted/flood")
    assert code is grpc.StatusCode.OK
    text, messages = joined_text(responses)
    assert text == "".join(WORDS)
    assert messages < CHUNKS, "every chunk went out as a message of its own: nothing was merged"
    assert responses[0].HasField("started") and responses[-1].finish.text == text


class Bug(Exception):
    """An error no part of toolwire expects: the chat ends with INTERNAL."""


def unexpected(message: str, code: str) -> Exception:
    return Bug(message)


@pytest.mark.parametrize("expected", ["the model's error", "a bug"])
async def test_text_accepted_before_a_failure_arrives_before_the_error_status(stub, monkeypatch, expected):
    # A slow client, made exact: the server's writes wait until the chat has failed. By then every
    # chunk is accepted (queued behind the first write), and all of it must still reach the client.
    chat_failed = asyncio.Event()
    run, write = ChatSessions.run, GrpcChatStream._write

    async def run_and_note_the_end(sessions: ChatSessions, *arguments: Any) -> ChatFinished:
        try:
            return await run(sessions, *arguments)
        finally:
            chat_failed.set()

    async def write_once_the_chat_failed(stream: GrpcChatStream, event: ChatEvent) -> None:
        await chat_failed.wait()
        await write(stream, event)

    monkeypatch.setattr(ChatSessions, "run", run_and_note_the_end)
    monkeypatch.setattr(GrpcChatStream, "_write", write_once_the_chat_failed)
    if expected == "a bug":  # the script's fault raises a Bug instead of a ModelError
        monkeypatch.setattr(scripted, "ModelError", unexpected)
    responses, code, details = await read_all(stub, "scripted/flood_then_unavailable")
    if expected == "a bug":
        assert (code, details) == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
    else:
        assert (code, details) == (grpc.StatusCode.UNAVAILABLE, "the model is overloaded")
    assert responses and responses[0].HasField("started")
    text, _ = joined_text(responses)
    assert text == "".join(WORDS), f"{len(text)} of {len(''.join(WORDS))} characters before the status"


class EndedCall:
    """A servicer context whose call has ended: every write fails as grpc.aio reports it."""

    async def write(self, message: pb.ChatResponse) -> None:
        await asyncio.sleep(0)
        raise grpc.aio.InternalError("the call ended")


async def test_a_write_that_finds_the_call_ended_ends_a_chat_waiting_for_tool_results():
    stream = GrpcChatStream(EndedCall(), ServerSettings(listen="127.0.0.1:0"))  # type: ignore[arg-type]
    tool_results = asyncio.Event()  # never set: the client is gone

    async def chat() -> ChatFinished:
        await stream.send(ToolRequestOut("call-1", "get_weather", "{}", 1))
        await tool_results.wait()
        raise AssertionError("unreachable")

    relaying = asyncio.create_task(stream.relay(chat()))
    for _ in range(20):  # loop iterations, no clock
        await asyncio.sleep(0)
    assert relaying.done(), "the chat waits on, though its call ended under it"
    with pytest.raises(CallEnded):
        relaying.result()
    assert asyncio.all_tasks() == {asyncio.current_task()}

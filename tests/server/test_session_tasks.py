"""How a session runs its chat and its result reader: the chat in the caller's task, the reader beside
it, and how the two end each other (session.py's `_run_beside_reader`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import pytest

from tests.server.harness import FakeStream, Harness, chat_request, tool_call
from toolwire.server import session
from toolwire.server.conversation import ModelCall, ToolResult
from toolwire.server.errors import FailedPrecondition, InvalidRequest, ModelError
from toolwire.server.events import ModelEvent
from toolwire.server.models.scripted import ScriptedModel

ANSWER = {"chunks": [{"text": "Sunny."}], "finish_reason": "stop"}
WEATHER = {
    "turns": [
        {"chunks": [tool_call(0, "call_1", "get_weather", '{"location": "Paris"}')]},
        ANSWER,
    ]
}


async def test_the_first_model_call_starts_in_the_task_that_runs_the_chat(monkeypatch):
    """Nothing waits for the event loop between a chat's start and its first model call: a new task
    for the chat would start its work one loop iteration later."""
    streaming_tasks: list[asyncio.Task[object] | None] = []
    scripted_stream = ScriptedModel.stream

    async def recorded(self: ScriptedModel, call: ModelCall) -> AsyncGenerator[ModelEvent, None]:
        streaming_tasks.append(asyncio.current_task())
        async for event in scripted_stream(self, call):
            yield event

    monkeypatch.setattr(ScriptedModel, "stream", recorded)
    stream = FakeStream()
    await stream.client_sends(chat_request("scripted/answer"))
    await stream.client_sends(None)
    chat = asyncio.create_task(Harness({"answer": {"turns": [ANSWER]}}).sessions.run(stream))
    await asyncio.sleep(0)  # the chat task's first step, and only that
    assert streaming_tasks == [chat]
    finished = await asyncio.wait_for(chat, 10)
    assert finished.text == "Sunny."


async def test_a_protocol_error_read_while_the_chat_waits_ends_it_and_leaves_no_cancel_behind():
    async def start_again(request, stream):
        await stream.client_sends(chat_request("scripted/weather"))

    stream = FakeStream(answer=start_again)
    await stream.client_sends(chat_request("scripted/weather"))
    with pytest.raises(InvalidRequest, match="a second start"):
        await Harness({"weather": WEATHER}).sessions.run(stream)  # in this task (no wait_for's task)
    task = asyncio.current_task()
    assert task is not None
    # The reader cancelled the chat (this task) to end its wait. That cancel is taken back, so the task
    # is not left cancelling, as Python 3.11's TaskGroup left it (CPython gh-116720).
    assert task.cancelling() == 0
    await asyncio.sleep(0)


async def test_the_reader_has_stopped_when_the_chat_returns():
    """The reader waits for the client's next message; the chat's end cancels it and waits for it."""
    before = asyncio.all_tasks()
    stream = FakeStream()
    await stream.client_sends(chat_request("scripted/weather"))
    finished = await Harness({"weather": WEATHER}).sessions.run(stream)  # in this task
    assert finished.text == "Sunny."
    assert stream.inbox.empty()  # the client never half-closed: the reader was still waiting
    assert asyncio.all_tasks() == before


async def test_the_chat_is_not_cancelled_by_a_reader_that_ends_cleanly():
    """A client that half-closes after the last result: the reader ends without error, and the chat
    goes on to its answer."""

    async def answer_and_close(request, stream):
        await stream.client_sends(ToolResult(request.tool_call_id, "sunny"))
        await stream.client_sends(None)

    finished, _ = await Harness({"weather": WEATHER}).run(
        chat_request("scripted/weather"), FakeStream(answer=answer_and_close)
    )
    assert finished.text == "Sunny."


async def _failed_with(error: BaseException) -> asyncio.Task[None]:
    async def fail() -> None:
        raise error

    task = asyncio.create_task(fail())
    await asyncio.wait([task])
    return task


async def test_when_both_fail_the_reader_s_protocol_error_is_reported():
    reader = await _failed_with(InvalidRequest("a second start on the same stream"))
    assert isinstance(session._reported(reader, ModelError("the provider failed")), InvalidRequest)
    assert isinstance(session._reported(reader, None), InvalidRequest)


async def test_when_both_fail_a_named_error_wins_over_an_unexpected_one():
    reader = await _failed_with(RuntimeError("a bug in the reader"))
    assert isinstance(session._reported(reader, ModelError("the provider failed")), ModelError)
    assert isinstance(session._reported(reader, ValueError("a bug in the chat")), RuntimeError)


class _Chat:
    """Stands in for a ChatLoop: `_run_beside_reader` only calls its `run`."""

    def __init__(self, body):
        self.run = body


async def _protocol_error() -> None:
    await asyncio.sleep(0)
    raise InvalidRequest("a second start on the same stream")


async def test_a_chat_that_fails_on_the_reader_s_cancel_ends_with_the_reader_s_error():
    async def fails_when_cancelled():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise ModelError("the provider stream broke as the chat was cancelled") from None

    with pytest.raises(InvalidRequest, match="a second start"):
        await session._run_beside_reader(_Chat(fails_when_cancelled), _protocol_error())
    assert asyncio.current_task().cancelling() == 0


async def test_a_chat_that_swallows_the_reader_s_cancel_still_ends_with_the_reader_s_error():
    async def swallows_the_cancel():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        return "finished anyway"

    with pytest.raises(InvalidRequest, match="a second start"):
        await session._run_beside_reader(_Chat(swallows_the_cancel), _protocol_error())
    assert asyncio.current_task().cancelling() == 0


async def test_a_cancel_from_outside_is_not_taken_for_the_reader_s():
    """The chat's task is cancelled from outside (its deadline, say) as the reader fails: the chat
    ends cancelled, and the outside cancel is still counted."""
    reader_failed = asyncio.Event()

    async def reader() -> None:
        await asyncio.sleep(0)
        reader_failed.set()
        raise InvalidRequest("a second start on the same stream")

    async def chat_body():
        await asyncio.sleep(10)

    async def runs_the_chat():
        await session._run_beside_reader(_Chat(chat_body), reader())

    task = asyncio.create_task(runs_the_chat())
    await reader_failed.wait()
    task.cancel()  # lands with the reader's cancel, before the chat has run again
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelling() == 1


async def test_a_request_stream_ending_just_before_its_call_is_a_cancel_not_a_protocol_error():
    """gRPC may end a cancelled call's reads a moment before it cancels the handler: the end of the
    requests with a call outstanding waits `HALF_CLOSE_GRACE_SECONDS` for the call's end."""

    async def then_cancelled(request, stream):
        await stream.client_sends(None)  # the read ends first ...
        asyncio.get_running_loop().call_later(0.02, chat.cancel)  # ... then the call, a moment later

    stream = FakeStream(answer=then_cancelled)
    await stream.client_sends(chat_request("scripted/weather"))
    chat = asyncio.create_task(Harness({"weather": WEATHER}).sessions.run(stream))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(chat, 10)


async def test_a_half_close_with_a_call_outstanding_is_still_the_clients_error():
    async def then_half_closed(request, stream):
        await stream.client_sends(None)

    stream = FakeStream(answer=then_half_closed)
    await stream.client_sends(chat_request("scripted/weather"))
    started = asyncio.get_running_loop().time()
    with pytest.raises(FailedPrecondition, match="closed its side of the stream while tool call 'call_1'"):
        await asyncio.wait_for(Harness({"weather": WEATHER}).sessions.run(stream), 10)
    assert asyncio.get_running_loop().time() - started >= session.HALF_CLOSE_GRACE_SECONDS

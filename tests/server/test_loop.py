"""The chat loop, driven by the scripted model through an in-memory stream."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.server.harness import FakeStream, Harness, chat_request, tool_call
from toolwire.server.chat_events import (
    ChatStarted,
    FinishReason,
    TextOut,
    ToolAbandonedOut,
    ToolArgumentsOut,
    ToolRejectedOut,
    ToolRequestOut,
    UsageOut,
)
from toolwire.server.conversation import Role, ToolResult
from toolwire.server.errors import (
    FailedPrecondition,
    InvalidRequest,
    LimitExceeded,
    ModelError,
    ModelNotFound,
)
from toolwire.server.settings import Limits, ServerSettings

ANSWER = {
    "chunks": [{"text": "It is sunny."}],
    "finish_reason": "stop",
    "usage": {"input_tokens": 30, "output_tokens": 4},
}
WEATHER = {
    "turns": [
        {
            "chunks": [
                {"text": "Checking."},
                tool_call(0, "call_1", "get_weather", '{"loc'),
                tool_call(0, arguments='ation": "Paris"}'),
            ],
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
        ANSWER,
    ]
}
PARALLEL = {
    "turns": [
        {
            "chunks": [
                tool_call(0, "call_w", "get_weather", '{"location": "Paris"}'),
                tool_call(1, "call_t", "get_time", '{"city": '),
                {"text": "(between)"},
                tool_call(1, arguments='"Tokyo"}'),
            ]
        },
        ANSWER,
    ]
}


async def test_text_only_chat_relays_every_delta_and_finishes():
    finished, stream = await Harness({}).run(chat_request("scripted/echo", tools=()))
    assert isinstance(stream.sent[0], ChatStarted)
    assert [event.text for event in stream.of_type(TextOut)] == [
        "What ",
        "is ",
        "the ",
        "weather ",
        "in ",
        "Paris?",
    ]
    assert finished.reason is FinishReason.STOP
    assert (finished.text, finished.rounds, finished.chunks_received) == (
        "What is the weather in Paris?",
        1,
        6,
    )
    assert finished.usage.input_tokens is None and finished.usage.output_tokens is None  # unknown, not 0
    assert [(message.role, message.content) for message in finished.messages] == [
        (Role.ASSISTANT, "What is the weather in Paris?")
    ]
    assert stream.sent[-1] is finished


async def test_one_tool_round_feeds_the_result_back_and_records_the_transcript():
    harness = Harness({"weather": WEATHER})
    finished, stream = await harness.run(chat_request("scripted/weather"))
    requests = stream.of_type(ToolRequestOut)
    assert [(r.tool_call_id, r.name, json.loads(r.arguments_json), r.round) for r in requests] == [
        ("call_1", "get_weather", {"location": "Paris"}, 1)
    ]
    second_call = harness.provider.activity.calls[1]
    assert second_call.round == 2
    assert [(m.role, m.tool_call_id, m.content) for m in second_call.messages[1:]] == [
        (Role.ASSISTANT, "", "Checking."),
        (Role.TOOL, "call_1", 'sunny ({"location": "Paris"})'),
    ]
    assert second_call.messages[1].tool_calls[0].name == "get_weather"
    assert (finished.rounds, finished.tools_called, finished.text) == (2, ("get_weather",), "It is sunny.")
    assert (finished.usage.input_tokens, finished.usage.output_tokens) == (40, 9)
    assert [u.round for u in stream.of_type(UsageOut)] == [1, 2]
    assert [m.role for m in finished.messages] == [Role.ASSISTANT, Role.TOOL, Role.ASSISTANT]


async def test_usage_total_is_unknown_when_one_call_did_not_report_it():
    script = {"turns": [WEATHER["turns"][0], {"chunks": [{"text": "ok"}]}]}
    finished, _ = await Harness({"s": script}).run(chat_request("scripted/s"))
    assert finished.usage.input_tokens is None and finished.usage.output_tokens is None


async def test_each_call_is_dispatched_as_soon_as_it_is_complete():
    finished, stream = await Harness({"parallel": PARALLEL}).run(chat_request("scripted/parallel"))
    order = [
        event.tool_call_id if isinstance(event, ToolRequestOut) else event.text
        for event in stream.sent
        if isinstance(event, ToolRequestOut | TextOut)
    ]
    # call_w went out when call_t began, before the model streamed the rest of the turn.
    assert order[:3] == ["call_w", "(between)", "call_t"]
    assert finished.tools_called == ("get_weather", "get_time")


async def test_results_answered_out_of_order_resume_the_model_once_all_are_in():
    held: list[ToolRequestOut] = []

    async def answer_in_reverse(request: ToolRequestOut, stream: FakeStream) -> None:
        held.append(request)
        if len(held) == 2:
            for pending in reversed(held):
                await stream.client_sends(ToolResult(pending.tool_call_id, f"result of {pending.name}"))

    harness = Harness({"parallel": PARALLEL})
    finished, _ = await harness.run(chat_request("scripted/parallel"), FakeStream(answer=answer_in_reverse))
    resumed = harness.provider.activity.calls[1].messages
    assert [(m.tool_call_id, m.content) for m in resumed if m.role is Role.TOOL] == [
        ("call_w", "result of get_weather"),
        ("call_t", "result of get_time"),
    ]
    assert finished.rounds == 2


@pytest.mark.parametrize("answer_order", [("call_w", "call_t"), ("call_t", "call_w")])
async def test_a_round_waits_for_every_result_however_long_each_takes(answer_order):
    """Results that come one by one while the loop already waits: none resumes the model alone,
    whichever call it answers, in dispatch order or not."""
    harness = Harness({"parallel": PARALLEL})
    stream = FakeStream(answer=None)
    await stream.client_sends(chat_request("scripted/parallel"))
    chat = asyncio.create_task(harness.sessions.run(stream))
    for _ in range(1000):  # until both calls are dispatched and the model's turn is over
        if len(stream.of_type(ToolRequestOut)) == 2 and harness.provider.activity.streams_completed == 1:
            break
        await asyncio.sleep(0)
    for tool_call_id in answer_order:
        for _ in range(20):  # the loop gets every chance to resume the model too early
            await asyncio.sleep(0)
        assert len(harness.provider.activity.calls) == 1, f"the model resumed before {tool_call_id}'s result"
        await stream.client_sends(ToolResult(tool_call_id, f"result for {tool_call_id}"))
    finished = await asyncio.wait_for(chat, 10)
    resumed = harness.provider.activity.calls[1].messages
    assert [(m.tool_call_id, m.content) for m in resumed if m.role is Role.TOOL] == [
        ("call_w", "result for call_w"),
        ("call_t", "result for call_t"),
    ]
    assert finished.rounds == 2


async def test_invalid_calls_are_repaired_by_the_server_and_never_reach_the_client():
    script = {
        "turns": [
            {
                "chunks": [
                    tool_call(0, "c_unknown", "get_stock_price", '{"ticker": "X"}'),
                    tool_call(1, "c_json", "get_weather", '{"location": '),
                    tool_call(2, "c_schema", "get_weather", '{"location": 42}'),
                    tool_call(3, "c_array", "get_weather", "[1]"),
                    tool_call(4, "c_ok", "get_time", '{"city": "Oslo"}'),
                ]
            },
            ANSWER,
        ]
    }
    harness = Harness({"bad": script})
    finished, stream = await harness.run(chat_request("scripted/bad"))
    assert [r.tool_call_id for r in stream.of_type(ToolRequestOut)] == ["c_ok"]
    rejected = {r.tool_call_id: r.reason for r in stream.of_type(ToolRejectedOut)}
    assert set(rejected) == {"c_unknown", "c_json", "c_schema", "c_array"}
    assert (
        "Unknown tool 'get_stock_price'" in rejected["c_unknown"] and "get_weather" in rejected["c_unknown"]
    )
    assert "not valid JSON" in rejected["c_json"]
    assert "['location']" in rejected["c_schema"] and "is not of type 'string'" in rejected["c_schema"]
    assert "must be a JSON object" in rejected["c_array"]
    tool_messages = [m for m in harness.provider.activity.calls[1].messages if m.role is Role.TOOL]
    assert [(m.tool_call_id, m.is_error) for m in tool_messages] == [
        ("c_unknown", True), ("c_json", True), ("c_schema", True), ("c_array", True), ("c_ok", False)
    ]  # fmt: skip
    assert tool_messages[0].content == rejected["c_unknown"]
    assert finished.tools_called == ("get_time",)


async def test_a_call_not_answered_in_time_is_abandoned_and_a_late_answer_is_ignored():
    async def never_answer(request: ToolRequestOut, stream: FakeStream) -> None:
        return None

    stream = FakeStream(answer=never_answer)
    original_send = stream.send

    async def send_and_answer_late(event):
        await original_send(event)
        if isinstance(event, ToolAbandonedOut):
            await stream.client_sends(ToolResult(event.tool_call_id, "too late"))

    stream.send = send_and_answer_late  # type: ignore[method-assign]
    harness = Harness({"weather": WEATHER})
    finished, _ = await harness.run(chat_request("scripted/weather", tool_timeout_seconds=0.2), stream)
    abandoned = stream.of_type(ToolAbandonedOut)
    assert [(a.tool_call_id, a.round) for a in abandoned] == [("call_1", 1)]
    assert "did not answer" in abandoned[0].reason
    result = next(m for m in harness.provider.activity.calls[1].messages if m.role is Role.TOOL)
    assert result.is_error and "did not answer tool call 'call_1'" in result.content
    assert finished.reason is FinishReason.STOP


async def test_max_tool_rounds_caps_the_loop_without_running_the_last_calls():
    turn = {"chunks": [{"text": "again"}, tool_call(0, "c", "get_time", '{"city": "Rome"}')]}
    harness = Harness({"loop": {"turns": [turn, turn, turn, ANSWER]}})
    finished, stream = await harness.run(chat_request("scripted/loop", max_tool_rounds=2))
    assert finished.reason is FinishReason.MAX_TOOL_ROUNDS
    assert finished.rounds == 3
    assert len(stream.of_type(ToolRequestOut)) == 2
    assert [r.tool_call_id for r in stream.of_type(ToolRequestOut)] == ["c", "c_2"]  # ids unique in the chat
    assert finished.messages[-1].role is Role.ASSISTANT and finished.messages[-1].tool_calls == ()


async def test_partial_arguments_stream_only_when_asked():
    harness = Harness({"weather": WEATHER})
    _, quiet = await harness.run(chat_request("scripted/weather"))
    assert quiet.of_type(ToolArgumentsOut) == []
    _, chatty = await harness.run(chat_request("scripted/weather", stream_tool_arguments=True))
    deltas = chatty.of_type(ToolArgumentsOut)
    assert [(d.tool_call_id, d.name, d.arguments_delta) for d in deltas] == [
        ("call_1", "get_weather", '{"loc'),
        ("call_1", "get_weather", 'ation": "Paris"}'),
    ]
    assert chatty.sent.index(deltas[-1]) < chatty.sent.index(chatty.of_type(ToolRequestOut)[0])


async def test_a_call_cut_short_by_the_output_limit_is_not_run_and_the_chat_ends_with_length():
    script = {
        "turns": [
            {
                "chunks": [
                    tool_call(0, "call_w", "get_weather", '{"location": "Paris"}'),
                    tool_call(1, "call_cut", "get_weather", '{"location": "Ber'),
                ],
                "finish_reason": "length",
            },
            ANSWER,
        ]
    }
    harness = Harness({"cut": script})
    finished, stream = await harness.run(chat_request("scripted/cut"))
    assert [request.tool_call_id for request in stream.of_type(ToolRequestOut)] == ["call_w"]
    rejected = stream.of_type(ToolRejectedOut)
    assert [r.tool_call_id for r in rejected] == ["call_cut"]
    assert "output limit" in rejected[0].reason
    assert finished.reason is FinishReason.STOP  # the complete call ran; the model was asked again
    only_cut = {
        "turns": [{"chunks": [tool_call(0, "call_cut", "get_weather", '{"loc')], "finish_reason": "length"}]
    }
    finished, stream = await Harness({"cut": only_cut}).run(chat_request("scripted/cut"))
    assert finished.reason is FinishReason.LENGTH
    assert stream.of_type(ToolRequestOut) == []
    assert finished.rounds == 1


async def test_finish_reason_length_is_reported():
    script = {"turns": [{"chunks": [{"text": "cut"}], "finish_reason": "length"}]}
    finished, _ = await Harness({"long": script}).run(chat_request("scripted/long"))
    assert finished.reason is FinishReason.LENGTH


async def test_a_model_error_ends_the_chat_with_its_code():
    script = {
        "turns": [{"chunks": [{"text": "Hel"}, {"error": {"code": "UNAVAILABLE", "message": "overloaded"}}]}]
    }
    with pytest.raises(ModelError) as raised:
        await Harness({"fail": script}).run(chat_request("scripted/fail"))
    assert (raised.value.code, raised.value.message) == ("UNAVAILABLE", "overloaded")


async def test_a_chat_needing_more_turns_than_scripted_says_so():
    with pytest.raises(FailedPrecondition, match=r"has 1 turn\(s\) but the chat needed model call 2"):
        await Harness({"short": {"turns": [WEATHER["turns"][0]]}}).run(chat_request("scripted/short"))


async def test_unknown_model_is_not_found():
    with pytest.raises(ModelNotFound, match="no script named 'nope'"):
        await Harness({}).run(chat_request("scripted/nope"))
    with pytest.raises(ModelNotFound, match="unknown provider 'acme'"):
        await Harness({}).run(chat_request("acme/model"))
    with pytest.raises(InvalidRequest, match=r"start\.model is empty"):
        await Harness({}).run(chat_request(""))


async def test_first_message_must_be_start():
    stream = FakeStream()
    await stream.client_sends(ToolResult("x", "early"))
    with pytest.raises(InvalidRequest, match="first message must be start"):
        await Harness({}).sessions.run(stream)
    empty = FakeStream()
    await empty.client_sends(None)
    with pytest.raises(InvalidRequest, match="closed before any message"):
        await Harness({}).sessions.run(empty)


async def test_a_second_start_is_rejected():
    async def send_start_again(request, stream):
        await stream.client_sends(chat_request("scripted/echo"))

    with pytest.raises(InvalidRequest, match="a second start"):
        await Harness({"weather": WEATHER}).run(
            chat_request("scripted/weather"), FakeStream(answer=send_start_again)
        )


async def test_a_result_for_an_id_never_issued_is_rejected():
    async def answer_wrong_id(request, stream):
        await stream.client_sends(ToolResult("made_up", "?"))

    with pytest.raises(InvalidRequest, match="'made_up', which this chat never sent"):
        await Harness({"weather": WEATHER}).run(
            chat_request("scripted/weather"), FakeStream(answer=answer_wrong_id)
        )


async def test_a_second_result_for_one_call_is_rejected():
    async def answer_twice(request, stream):
        for _ in range(2):
            await stream.client_sends(ToolResult(request.tool_call_id, "once"))

    with pytest.raises(InvalidRequest, match="a second tool_result"):
        await Harness({"weather": WEATHER}).run(
            chat_request("scripted/weather"), FakeStream(answer=answer_twice)
        )


async def test_a_result_over_the_size_limit_is_resource_exhausted():
    async def answer_huge(request, stream):
        await stream.client_sends(ToolResult(request.tool_call_id, "x" * 2048))

    harness = Harness({"weather": WEATHER}, ServerSettings(limits=Limits(max_tool_result_bytes=1024)))
    with pytest.raises(LimitExceeded, match="2048 bytes; the limit is 1024"):
        await harness.run(chat_request("scripted/weather"), FakeStream(answer=answer_huge))


async def test_a_client_that_half_closed_cannot_be_sent_a_tool_call():
    # The model's first chunk comes after a pause, so the half-close is read before the model calls
    # the tool (the chat's first model call starts before the reader's first read).
    late_weather = {"turns": [{"chunks": [{"delay_ms": 1}, *WEATHER["turns"][0]["chunks"]]}, ANSWER]}
    stream = FakeStream(answer=None)
    await stream.client_sends(chat_request("scripted/weather"))
    await stream.client_sends(None)
    with pytest.raises(FailedPrecondition, match="already closed its side"):
        await asyncio.wait_for(Harness({"weather": late_weather}).sessions.run(stream), 5)


async def test_half_closing_while_a_call_waits_fails_the_chat_at_once():
    async def close_instead(request, stream):
        await stream.client_sends(None)

    with pytest.raises(FailedPrecondition, match="was waiting for its result"):
        await Harness({"weather": WEATHER}).run(
            chat_request("scripted/weather"), FakeStream(answer=close_instead)
        )


async def test_cancelling_a_chat_stops_the_model_stream_at_once():
    script = {"turns": [{"chunks": [{"text": "first"}, {"delay_ms": 30000}, {"text": "never"}]}]}
    harness = Harness({"slow": script})
    stream = FakeStream()
    await stream.client_sends(chat_request("scripted/slow"))
    chat = asyncio.create_task(harness.sessions.run(stream))
    while not stream.of_type(TextOut):
        await asyncio.wait_for(stream.sent_event.wait(), 5)
        stream.sent_event.clear()
    assert not chat.done()  # text was relayed while the model was still streaming
    chat.cancel()
    with pytest.raises(asyncio.CancelledError):
        await chat
    activity = harness.provider.activity
    assert (activity.streams_started, activity.streams_closed_early, activity.streams_completed) == (1, 1, 0)
    assert [event.text for event in stream.of_type(TextOut)] == ["first"]

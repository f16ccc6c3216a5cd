"""Proto ↔ Message conversion and ChatResponse → event conversion."""

import pytest
from google.protobuf import duration_pb2

from toolwire.client import (
    Finish,
    Message,
    Started,
    TextDelta,
    ToolArgumentsDelta,
    ToolCall,
    ToolCallAbandoned,
    ToolCallRejected,
    ToolRequest,
    Usage,
    event_from_proto,
)
from toolwire.v1 import chat_pb2 as pb

CONVERSATION = [
    Message.system("Be brief."),
    Message.user("Weather in Paris?"),
    Message.assistant("Checking.", [ToolCall("call_1", "get_weather", '{"location": "Paris"}')]),
    Message.tool("call_1", "no data", is_error=True),
    Message.assistant("I could not find out."),
]


def test_message_round_trip_through_proto() -> None:
    for message in CONVERSATION:
        assert Message.from_proto(message.to_proto()) == message


def test_message_to_proto_fields() -> None:
    assistant = CONVERSATION[2].to_proto()
    assert assistant == pb.Message(
        role=pb.ROLE_ASSISTANT,
        content="Checking.",
        tool_calls=[pb.ToolCall(id="call_1", name="get_weather", arguments_json='{"location": "Paris"}')],
    )
    assert CONVERSATION[3].to_proto() == pb.Message(
        role=pb.ROLE_TOOL, content="no data", tool_call_id="call_1", is_error=True
    )
    assert Message.system("x").to_proto().role == pb.ROLE_SYSTEM
    assert Message.user("x").to_proto() == pb.Message(role=pb.ROLE_USER, content="x")


def test_proto_round_trip_through_message() -> None:
    proto = pb.Message(
        role=pb.ROLE_ASSISTANT,
        content="",
        tool_calls=[pb.ToolCall(id="a", name="f", arguments_json="{}"), pb.ToolCall(id="b", name="g")],
    )
    assert Message.from_proto(proto).to_proto() == proto


def test_unknown_roles_are_rejected() -> None:
    with pytest.raises(ValueError, match="role 'robot'"):
        Message(role="robot", content="beep")
    with pytest.raises(ValueError, match="not a known toolwire role"):
        Message.from_proto(pb.Message(role=pb.ROLE_UNSPECIFIED, content="x"))


def test_simple_events() -> None:
    assert event_from_proto(pb.ChatResponse(started=pb.ChatStarted(chat_id="c1", model="m/x"))) == Started(
        "c1", "m/x"
    )
    assert event_from_proto(pb.ChatResponse(text_delta=pb.TextDelta(text="hi", round=2))) == TextDelta(
        "hi", 2
    )
    delta = pb.ToolArgumentsDelta(tool_call_id="t", name="f", arguments_delta='{"a', round=1)
    assert event_from_proto(pb.ChatResponse(tool_arguments_delta=delta)) == ToolArgumentsDelta(
        "t", "f", '{"a', 1
    )
    abandoned = pb.ToolCallAbandoned(tool_call_id="t", reason="late", round=3)
    assert event_from_proto(pb.ChatResponse(tool_call_abandoned=abandoned)) == ToolCallAbandoned(
        "t", "late", 3
    )
    rejected = pb.ToolCallRejected(tool_call_id="t", name="nope", arguments_json="{", reason="bad", round=1)
    assert event_from_proto(pb.ChatResponse(tool_call_rejected=rejected)) == ToolCallRejected(
        "t", "nope", "{", "bad", 1
    )


def test_tool_request_arguments_are_parsed() -> None:
    request = pb.ToolRequest(tool_call_id="t", name="f", arguments_json='{"a": [1, 2]}', round=1)
    assert event_from_proto(pb.ChatResponse(tool_request=request)) == ToolRequest(
        "t", "f", {"a": [1, 2]}, '{"a": [1, 2]}', 1
    )
    empty = pb.ToolRequest(tool_call_id="t", name="f", arguments_json="", round=1)
    event = event_from_proto(pb.ChatResponse(tool_request=empty))
    assert isinstance(event, ToolRequest)
    assert event.arguments == {}


def test_tool_request_arguments_must_be_an_object() -> None:
    request = pb.ToolRequest(tool_call_id="t", name="f", arguments_json="[1]", round=1)
    with pytest.raises(ValueError, match="not a JSON object"):
        event_from_proto(pb.ChatResponse(tool_request=request))


def test_unset_usage_is_none_and_zero_is_zero() -> None:
    unset = pb.ChatResponse(usage=pb.UsageUpdate(round=1, usage=pb.Usage()))
    assert event_from_proto(unset) == Usage(round=1, input_tokens=None, output_tokens=None)
    missing = pb.ChatResponse(usage=pb.UsageUpdate(round=1))
    assert event_from_proto(missing) == Usage(round=1, input_tokens=None, output_tokens=None)
    zero = pb.ChatResponse(usage=pb.UsageUpdate(round=2, usage=pb.Usage(input_tokens=0, output_tokens=7)))
    assert event_from_proto(zero) == Usage(round=2, input_tokens=0, output_tokens=7)


def test_finish_conversion() -> None:
    finish = pb.ChatFinish(
        reason=pb.FINISH_REASON_MAX_TOOL_ROUNDS,
        text="done",
        tools_called=["get_weather", "get_time"],
        chunks_received=12,
        rounds=3,
        usage=pb.Usage(input_tokens=40),
        duration=duration_pb2.Duration(seconds=1, nanos=500_000_000),
        messages=[message.to_proto() for message in CONVERSATION[2:]],
        model="scripted/weather",
    )
    assert event_from_proto(pb.ChatResponse(finish=finish)) == Finish(
        reason="max_tool_rounds",
        text="done",
        tools_called=["get_weather", "get_time"],
        chunks_received=12,
        rounds=3,
        input_tokens=40,
        output_tokens=None,
        duration_seconds=1.5,
        messages=CONVERSATION[2:],
        model="scripted/weather",
    )


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (pb.FINISH_REASON_STOP, "stop"),
        (pb.FINISH_REASON_LENGTH, "length"),
        (pb.FINISH_REASON_CONTENT_FILTER, "content_filter"),
        (pb.FINISH_REASON_OTHER, "other"),
        (99, "other"),
    ],
)
def test_finish_reasons(reason: int, expected: str) -> None:
    event = event_from_proto(pb.ChatResponse(finish=pb.ChatFinish(reason=reason)))  # type: ignore[arg-type]
    assert isinstance(event, Finish)
    assert event.reason == expected


def test_unknown_event_kind_is_skipped() -> None:
    assert event_from_proto(pb.ChatResponse()) is None

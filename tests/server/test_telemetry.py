"""Traces and metrics of chats, model calls and tool calls, read back from in-memory SDK exporters."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tests.server.harness import FakeStream, Harness, chat_request, tool_call
from toolwire.server.chat_events import ToolRequestOut
from toolwire.server.conversation import ToolResult
from toolwire.server.errors import ModelError, ModelNotFound
from toolwire.server.models.registry import ModelRegistry
from toolwire.server.session import ChatSessions
from toolwire.server.settings import ServerSettings
from toolwire.server.telemetry import NO_TELEMETRY, ChatTelemetry
from toolwire.server.telemetry_setup import TelemetryConfigError, telemetry_from_environment

WEATHER = {
    "turns": [
        {
            "chunks": [{"text": "Checking."}, tool_call(0, "call_1", "get_weather", '{"location": "Paris"}')],
            "usage": {"input_tokens": 10, "output_tokens": 5},
        },
        {"chunks": [{"text": "Sunny "}, {"text": "in Paris."}], "usage": {"input_tokens": 30}},
    ]
}
FAILING = {
    "turns": [{"chunks": [{"text": "partial"}, {"error": {"code": "UNAVAILABLE", "message": "down"}}]}]
}


class Recorded:
    """A ChatSessions whose telemetry goes to in-memory exporters."""

    def __init__(self, scripts: dict, capture_content: bool = False) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        telemetry = ChatTelemetry(
            tracer_provider, MeterProvider(metric_readers=[self.metrics]), capture_content
        )
        self.harness = Harness(scripts)
        self.harness.sessions = ChatSessions(
            ModelRegistry([self.harness.provider]), ServerSettings(), telemetry
        )

    def span(self, name: str):
        matching = [span for span in self.spans.get_finished_spans() if span.name == name]
        assert len(matching) == 1, [span.name for span in self.spans.get_finished_spans()]
        return matching[0]

    def points(self, metric_name: str) -> list:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == metric_name
            for point in metric.data.data_points
        ]


async def test_a_tool_round_gives_a_chat_span_with_model_calls_and_a_tool_span_as_children():
    recorded = Recorded({"weather": WEATHER})
    finished, _ = await recorded.harness.run(chat_request("scripted/weather"))
    chat = recorded.span("invoke_agent toolwire")
    model_calls = [span for span in recorded.spans.get_finished_spans() if span.name == "chat weather"]
    tool = recorded.span("execute_tool get_weather")
    assert [span.parent.span_id for span in [*model_calls, tool]] == [chat.context.span_id] * 3
    assert chat.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert chat.attributes["gen_ai.provider.name"] == "scripted"
    assert chat.attributes["toolwire.chat.rounds"] == 2
    assert chat.attributes["toolwire.chat.tools_called"] == ("get_weather",)
    assert chat.attributes["gen_ai.usage.input_tokens"] == 40
    assert "gen_ai.usage.output_tokens" not in chat.attributes  # the second call did not say: unknown
    first_call = model_calls[0].attributes
    assert (first_call["gen_ai.operation.name"], first_call["gen_ai.request.model"]) == ("chat", "weather")
    assert (first_call["gen_ai.usage.input_tokens"], first_call["gen_ai.usage.output_tokens"]) == (10, 5)
    assert first_call["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert "gen_ai.usage.output_tokens" not in model_calls[1].attributes  # unknown, not 0
    assert dict(tool.attributes) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.type": "function",
    }
    assert "gen_ai.input.messages" not in first_call  # no content unless the operator opts in
    assert finished.reason.value == "stop"


async def test_the_tool_request_carries_the_tool_span_as_w3c_trace_context():
    recorded = Recorded({"weather": WEATHER})
    _, stream = await recorded.harness.run(chat_request("scripted/weather"))
    request = stream.of_type(ToolRequestOut)[0]
    extracted = trace.get_current_span(TraceContextTextMapPropagator().extract(request.trace_context))
    tool = recorded.span("execute_tool get_weather")
    assert extracted.get_span_context().trace_id == tool.context.trace_id
    assert extracted.get_span_context().span_id == tool.context.span_id


async def test_without_a_tracer_the_tool_request_carries_no_trace_context():
    _, stream = await Harness({"weather": WEATHER}).run(chat_request("scripted/weather"))
    assert stream.of_type(ToolRequestOut)[0].trace_context == {}


async def test_with_telemetry_off_a_chat_touches_no_opentelemetry_api(monkeypatch):
    """The server's default (no exporter configured): a tool chat opens no span, not even a no-op
    one, and records no metric (each costs CPU on the path from a tool result to the next call)."""

    def refuse(*args, **kwargs):
        raise AssertionError("telemetry is off: no OpenTelemetry call expected")

    monkeypatch.setattr(NO_TELEMETRY.tracer, "start_as_current_span", refuse)
    monkeypatch.setattr(NO_TELEMETRY.tracer, "start_span", refuse)
    telemetry = NO_TELEMETRY
    for instrument in (telemetry.operation_duration, telemetry.agent_duration, telemetry.tool_duration):
        monkeypatch.setattr(instrument, "record", refuse)
    monkeypatch.setattr(NO_TELEMETRY.active_chats, "add", refuse)
    finished, stream = await Harness({"weather": WEATHER}).run(chat_request("scripted/weather"))
    assert finished.reason.value == "stop"
    assert finished.tools_called == ("get_weather",)
    assert stream.of_type(ToolRequestOut)[0].trace_context == {}


async def test_metrics_of_a_chat_follow_the_genai_conventions():
    recorded = Recorded({"weather": WEATHER})
    await recorded.harness.run(chat_request("scripted/weather"))
    tokens = {
        point.attributes["gen_ai.token.type"]: (point.count, point.sum)
        for point in recorded.points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": (2, 40), "output": (1, 5)}  # the second call reported no output count
    assert sum(point.count for point in recorded.points("gen_ai.client.operation.duration")) == 2
    assert sum(point.count for point in recorded.points("gen_ai.client.operation.time_to_first_chunk")) == 2
    # 2 chunks in the first call and 2 in the second: one gap each
    assert sum(point.count for point in recorded.points("gen_ai.client.operation.time_per_output_chunk")) == 2
    tool_points = recorded.points("gen_ai.execute_tool.duration")
    assert [(point.attributes["gen_ai.tool.name"], point.count) for point in tool_points] == [
        ("get_weather", 1)
    ]
    [chats] = recorded.points("toolwire.chats")
    assert (
        chats.value,
        chats.attributes["rpc.grpc.status_code"],
        chats.attributes["toolwire.finish_reason"],
    ) == (
        1,
        0,
        "stop",
    )
    assert [point.value for point in recorded.points("toolwire.chats.active")] == [0]
    [inference] = recorded.points("gen_ai.invoke_agent.inference_calls")
    assert inference.sum == 2


async def test_a_failed_chat_is_counted_by_its_grpc_code_and_its_spans_say_error():
    recorded = Recorded({"failing": FAILING})
    with pytest.raises(ModelError, match="down"):
        await recorded.harness.run(chat_request("scripted/failing"))
    chat = recorded.span("invoke_agent toolwire")
    assert chat.status.status_code.name == "ERROR" and chat.attributes["error.type"]
    assert recorded.span("chat failing").attributes["error.type"] == chat.attributes["error.type"]
    [chats] = recorded.points("toolwire.chats")
    assert chats.attributes["rpc.grpc.status_code"] == 14  # UNAVAILABLE


async def test_an_unknown_model_is_not_a_chat_span_but_a_not_found_status():
    recorded = Recorded({})
    with pytest.raises(ModelNotFound):
        await recorded.harness.run(chat_request("scripted/nothing"))
    assert recorded.spans.get_finished_spans() == ()


async def test_an_abandoned_tool_call_ends_its_span_with_a_timeout_error():
    recorded = Recorded({"weather": WEATHER})

    async def never_answer(request: ToolRequestOut, stream: FakeStream) -> None:
        return None

    await recorded.harness.run(
        chat_request("scripted/weather", tool_timeout_seconds=0.05), FakeStream(answer=never_answer)
    )
    tool = recorded.span("execute_tool get_weather")
    assert tool.attributes["error.type"] == "timeout" and tool.status.status_code.name == "ERROR"


async def test_a_tool_error_result_marks_the_tool_span():
    recorded = Recorded({"weather": WEATHER})

    async def fail(request: ToolRequestOut, stream: FakeStream) -> None:
        await stream.client_sends(ToolResult(request.tool_call_id, "boom", is_error=True))

    await recorded.harness.run(chat_request("scripted/weather"), FakeStream(answer=fail))
    assert recorded.span("execute_tool get_weather").attributes["error.type"] == "tool_error"


async def test_content_is_recorded_only_when_the_operator_opts_in():
    recorded = Recorded({"weather": WEATHER}, capture_content=True)
    await recorded.harness.run(chat_request("scripted/weather"))
    model_calls = [span for span in recorded.spans.get_finished_spans() if span.name == "chat weather"]
    sent = json.loads(model_calls[0].attributes["gen_ai.input.messages"])
    assert sent == [{"role": "user", "content": "What is the weather in Paris?"}]
    assert json.loads(model_calls[1].attributes["gen_ai.output.messages"])[0]["content"] == "Sunny in Paris."


async def test_a_client_cancel_ends_every_span():
    recorded = Recorded({"weather": WEATHER})

    requested = asyncio.Event()

    async def never_answer(request: ToolRequestOut, stream: FakeStream) -> None:
        requested.set()

    stream = FakeStream(answer=never_answer)
    await stream.client_sends(chat_request("scripted/weather"))
    chat = asyncio.ensure_future(recorded.harness.sessions.run(stream))
    await asyncio.wait_for(requested.wait(), 10)
    chat.cancel()
    with pytest.raises(asyncio.CancelledError):
        await chat
    names = sorted(span.name for span in recorded.spans.get_finished_spans())
    assert names == ["chat weather", "execute_tool get_weather", "invoke_agent toolwire"]
    assert [point.value for point in recorded.points("toolwire.chats.active")] == [0]


@pytest.mark.parametrize(
    ("environment", "traces", "metrics"),
    [
        ({}, False, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, True, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, True, False),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_METRICS_EXPORTER": "none"},
            True,
            False,
        ),
        ({"OTEL_TRACES_EXPORTER": "console"}, True, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SDK_DISABLED": "true"}, False, False),
    ],
)
def test_nothing_is_exported_unless_the_environment_asks(environment, traces, metrics):
    setup = telemetry_from_environment(environment)
    try:
        assert (setup.tracer_provider is not None, setup.meter_provider is not None) == (traces, metrics)
    finally:
        setup.shutdown()


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ],
)
def test_an_unusable_otel_setting_is_a_clear_error(environment, named):
    with pytest.raises(TelemetryConfigError, match=named):
        telemetry_from_environment(environment)

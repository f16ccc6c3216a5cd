"""A real server process exports OTLP to a collector on loopback; the Python client's tool span joins
the server's trace through ToolRequest.trace_context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.e2e.conftest import start_server, stop_server
from tests.fakes.otlp import FakeCollector, attributes, collector
from toolwire.client import Client, tool

pytestmark = pytest.mark.timeout(60)

CLIENT_SPANS = InMemorySpanExporter()


@tool
def get_weather(location: str) -> str:
    """Current weather for a place."""
    return f"sunny in {location}"


@pytest.fixture(scope="module")
def otlp() -> Iterator[FakeCollector]:
    yield from collector()


@pytest.fixture(scope="module")
def client_tracing() -> InMemorySpanExporter:
    """The test process plays the application: a global tracer provider, as an app would set one."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(CLIENT_SPANS))
    return CLIENT_SPANS


async def test_a_tool_round_exports_spans_and_metrics_and_the_client_span_joins_the_trace(
    otlp, client_tracing
):
    environment = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_SERVICE_NAME": "toolwire-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
    }
    server = start_server(environment=environment)
    try:
        async with Client(server.target) as client:
            finish = await client.run("scripted/weather", "Weather in Paris?", tools=[get_weather])
    finally:
        assert stop_server(server) == 0  # shutdown flushes the exporters
    assert finish.reason == "stop"

    spans = {span.name: span for span in otlp.spans()}
    assert {
        "/toolwire.v1.ChatService/Chat",
        "invoke_agent toolwire",
        "chat weather",
        "execute_tool get_weather",
    } <= set(spans)
    rpc, chat, tool_span = (
        spans["/toolwire.v1.ChatService/Chat"],
        spans["invoke_agent toolwire"],
        spans["execute_tool get_weather"],
    )
    assert chat.parent_span_id == rpc.span_id and tool_span.parent_span_id == chat.span_id
    assert (
        len({span.trace_id for span in spans.values() if span.name != "/toolwire.v1.ChatService/ListModels"})
        == 1
    )
    chat_attributes = attributes(chat)
    assert chat_attributes["gen_ai.operation.name"] == "invoke_agent"
    assert chat_attributes["toolwire.chat.tools_called"] == ["get_weather"]
    assert chat_attributes["gen_ai.usage.input_tokens"] == 52
    assert attributes(tool_span)["gen_ai.tool.call.id"] == "call_1"
    assert otlp.resource_attributes()["service.name"] == "toolwire-under-test"
    assert {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "gen_ai.client.operation.time_to_first_chunk",
        "gen_ai.execute_tool.duration",
        "toolwire.chats",
        "toolwire.chats.active",
    } <= otlp.metric_names()

    [client_span] = [
        span for span in client_tracing.get_finished_spans() if span.name == "execute_tool get_weather"
    ]
    assert client_span.context.trace_id.to_bytes(16, "big") == tool_span.trace_id
    assert client_span.parent is not None
    assert client_span.parent.span_id.to_bytes(8, "big") == tool_span.span_id


async def test_otel_sdk_disabled_exports_nothing_even_with_an_endpoint(otlp):
    before = len(otlp.spans())
    environment = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_SDK_DISABLED": "true"}
    server = start_server(environment=environment)
    try:
        async with Client(server.target) as client:
            await client.run("scripted/weather", "Weather?", tools=[get_weather])
    finally:
        assert stop_server(server) == 0
    assert len(otlp.spans()) == before

"""The client's span around a tool run: a child of the server's span, or of the app's own span."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from toolwire.client._tracing import tool_span

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SERVER_SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{SERVER_SPAN_ID:016x}-01"


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """A global tracer provider, as an application would set one (shared with other modules)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_the_tool_span_is_a_child_of_the_servers_span(spans):
    with tool_span("get_weather", "call_1", {"traceparent": TRACEPARENT}) as span:
        span.failed("ConnectionError: down")
    [finished] = [
        s for s in spans.get_finished_spans() if s.attributes.get("gen_ai.tool.call.id") == "call_1"
    ]
    assert finished.name == "execute_tool get_weather"
    assert (finished.context.trace_id, finished.parent.span_id) == (TRACE_ID, SERVER_SPAN_ID)
    assert finished.parent.is_remote
    assert finished.attributes["error.type"] == "tool_error"
    assert finished.status.status_code.name == "ERROR"


def test_without_server_context_the_tool_span_joins_the_applications_span(spans):
    tracer = trace.get_tracer("the application")
    with tracer.start_as_current_span("handle request") as outer, tool_span("get_time", "call_2", {}):
        pass
    [finished] = [
        s for s in spans.get_finished_spans() if s.attributes.get("gen_ai.tool.call.id") == "call_2"
    ]
    assert finished.parent is not None and finished.parent.span_id == outer.get_span_context().span_id
    assert "error.type" not in finished.attributes

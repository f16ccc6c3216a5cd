"""A span around each tool run, joined to the server's trace, when OpenTelemetry is installed.

The server sends the W3C context of its `execute_tool` span in every ToolRequest. With the
`opentelemetry-api` package present, the client runs the tool inside a span that is a child of it,
through the application's global tracer provider (so it is exported wherever the application's own
spans go). Without the package, or with no provider configured, this costs nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

try:
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - exercised only where opentelemetry is not installed
    trace = None  # type: ignore[assignment]


class ToolSpan:
    """Lets the caller mark the tool's outcome on its span."""

    def __init__(self, span: object | None) -> None:
        self._span = span

    def failed(self, content: str) -> None:
        """The tool failed; `content` is the error result sent to the model."""
        if self._span is not None:
            self._span.set_attribute("error.type", "tool_error")  # type: ignore[attr-defined]
            self._span.set_status(Status(StatusCode.ERROR, content[:200]))  # type: ignore[attr-defined]


@contextlib.contextmanager
def tool_span(name: str, tool_call_id: str, trace_context: Mapping[str, str]) -> Iterator[ToolSpan]:
    """A span `execute_tool {name}` for running one tool, a child of the server's span for it."""
    if trace is None:
        yield ToolSpan(None)
        return
    # The server always sends W3C trace context, whatever propagator the application set globally.
    # Without one (the server does not trace), the span joins the application's current span.
    parent = (
        TraceContextTextMapPropagator().extract(dict(trace_context))
        if trace_context.get("traceparent")
        else None
    )
    tracer = trace.get_tracer("toolwire.client")
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": tool_call_id,
        "gen_ai.tool.type": "function",
    }
    with tracer.start_as_current_span(
        f"execute_tool {name}", context=parent, kind=SpanKind.INTERNAL, attributes=attributes
    ) as span:
        yield ToolSpan(span)

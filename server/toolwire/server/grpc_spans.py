# mypy: disallow-untyped-calls=False, warn-unused-ignores=False
# (opentelemetry-instrumentation-grpc ships no type hints)
"""gRPC server spans from opentelemetry-instrumentation-grpc, for every handler style we use.

The package's asyncio interceptor wraps a streaming handler as an async generator (`async for
response in behavior(...)`), which fails for handlers that write with `context.write()` and return
nothing, as `Chat` does (it reads and writes in turn on one bidirectional stream). This subclass
keeps the package's span (name, attributes, remote parent, status from `context.abort`) and awaits
such handlers instead of iterating them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.grpc import _aio_server

SCHEMA_URL = "https://opentelemetry.io/schemas/1.11.0"


class ServerSpans(_aio_server.OpenTelemetryAioServerInterceptor):  # type: ignore[misc]
    """The package's server interceptor, also for stream handlers that write with context.write()."""

    def _intercept_aio_server_stream(self, behavior: Callable[..., Any], handler_call_details: Any) -> Any:
        if not inspect.iscoroutinefunction(behavior):
            return super()._intercept_aio_server_stream(behavior, handler_call_details)

        async def _writing_stream_interceptor(request_or_iterator: Any, context: Any) -> Any:
            with (
                self._set_remote_context(context),
                self._start_span(handler_call_details, context, set_status_on_exception=False) as span,
            ):
                wrapped = _aio_server._OpenTelemetryAioServicerContext(context, span)
                try:
                    return await behavior(request_or_iterator, wrapped)
                except Exception as error:
                    if type(error) is not Exception:  # a bare Exception is how grpc aborts
                        span.record_exception(error)
                    raise

        return _writing_stream_interceptor


def server_spans(tracer_provider: trace.TracerProvider) -> ServerSpans:
    """The interceptor, tracing through `tracer_provider` (as the package's `aio_server_interceptor`)."""
    from opentelemetry.instrumentation.grpc.version import __version__

    tracer = trace.get_tracer(__name__, __version__, tracer_provider, schema_url=SCHEMA_URL)
    return ServerSpans(tracer)

"""OpenTelemetry providers from the standard OTEL_* environment variables; nothing is exported by default.

Traces are exported when OTEL_TRACES_EXPORTER names an exporter, or when it is unset and an OTLP
endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); metrics the
same way with OTEL_METRICS_EXPORTER and OTEL_EXPORTER_OTLP_METRICS_ENDPOINT. OTEL_SDK_DISABLED=true
turns everything off. The exporters read the rest themselves: endpoint, headers, certificates,
timeouts, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_METRIC_EXPORT_INTERVAL, OTEL_BSP_*.

The SDK is imported only when something is exported (~60 ms of a server's start-up otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from toolwire.server.models.config import ConfigError
from toolwire.server.telemetry import CAPTURE_CONTENT_VARIABLE, NO_TELEMETRY, ChatTelemetry

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

EXPORTERS = ("otlp", "console", "none")


class TelemetryConfigError(ConfigError):
    """An OTEL_* variable this server cannot honour; the message names it and what to set."""


@dataclass(slots=True)
class TelemetrySetup:
    """The server's telemetry and the SDK providers behind it (None: that signal is not exported)."""

    telemetry: ChatTelemetry
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None

    def shutdown(self) -> None:
        """Flushes what is buffered and stops the exporters (at server exit)."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def telemetry_from_environment(environment: Mapping[str, str]) -> TelemetrySetup:
    """The providers the OTEL_* variables ask for; raises TelemetryConfigError for values we cannot use."""
    if environment.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return TelemetrySetup(NO_TELEMETRY)
    trace_exporters = _exporters(environment, "TRACES")
    metric_exporters = _exporters(environment, "METRICS")
    if not trace_exporters and not metric_exporters:
        return TelemetrySetup(NO_TELEMETRY)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": environment.get("OTEL_SERVICE_NAME") or "toolwire",
                                "service.version": _version()})  # fmt: skip
    tracer_provider = meter_provider = None
    if trace_exporters:
        tracer_provider = TracerProvider(resource=resource)
        for exporter in trace_exporters:
            tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(exporter)))
    if metric_exporters:
        readers: list[MetricReader] = [
            PeriodicExportingMetricReader(_metric_exporter(exporter)) for exporter in metric_exporters
        ]
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    capture = environment.get(CAPTURE_CONTENT_VARIABLE, "").strip().lower() == "true"
    return TelemetrySetup(
        ChatTelemetry(tracer_provider, meter_provider, capture), tracer_provider, meter_provider
    )


def _exporters(environment: Mapping[str, str], signal: str) -> list[str]:
    variable = f"OTEL_{signal}_EXPORTER"
    configured = environment.get(variable, "").strip()
    if not configured:
        endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        configured = "otlp" if any(environment.get(name) for name in endpoints) else "none"
    names = [name.strip().lower() for name in configured.split(",") if name.strip()]
    for name in names:
        if name not in EXPORTERS:
            raise TelemetryConfigError(
                f"{variable}={name!r} is not an exporter toolwire has: use one of {', '.join(EXPORTERS)}"
            )
    if "otlp" in names:
        _check_protocol(environment, signal)
    return [name for name in names if name != "none"]


def _check_protocol(environment: Mapping[str, str], signal: str) -> None:
    for variable in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environment.get(variable, "").strip()
        if protocol:
            if protocol != "grpc":
                raise TelemetryConfigError(
                    f"{variable}={protocol!r}: toolwire exports OTLP over gRPC only; set it to grpc "
                    "(collectors listen for OTLP/gRPC on port 4317)"
                )
            return


def _span_exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _metric_exporter(name: str) -> MetricExporter:
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


def _version() -> str:
    try:
        return version("toolwire")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"

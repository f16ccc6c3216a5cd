"""What a server imports when it starts: only what it will use. The openai and anthropic SDKs
(~1 s and ~2 s) and the OpenTelemetry SDK with the gRPC instrumentation (~0.12 s) were most of a
server's start-up; each is imported only when a provider or an exporter needs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

START = """
import json, sys
from toolwire.server.app import default_registry
from toolwire.server.setup import settings_from
from toolwire.server.telemetry_setup import telemetry_from_environment
environment = dict(argument.split("=", 1) for argument in sys.argv[1:])
default_registry(settings_from(None, {}, {}), environment)
telemetry_from_environment(environment)
print(json.dumps(sorted(name for name in sys.modules if name in {NAMES})))
"""
WATCHED = ("openai", "anthropic", "opentelemetry.sdk", "opentelemetry.instrumentation.grpc")


def imported_at_start(*environment: str) -> list[str]:
    """Which of WATCHED a server's start-up (registry and telemetry from `environment`) imports."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith(("_API_KEY", "_BASE_URL")) and not key.startswith("OTEL_")
    }
    code = START.replace("{NAMES}", repr(set(WATCHED)))
    result = subprocess.run(
        [sys.executable, "-c", code, *environment], capture_output=True, text=True, env=clean, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("environment", "imported"),
    [
        ((), []),
        (("OPENAI_API_KEY=sk-test",), ["openai"]),
        (("ANTHROPIC_API_KEY=sk-ant-test",), ["anthropic"]),
        (("OTEL_TRACES_EXPORTER=console",), ["opentelemetry.sdk"]),
    ],
)
def test_a_server_imports_only_the_sdks_it_uses(environment, imported):
    """A provider's SDK is imported while the server starts (never at its first chat), and only when
    the provider can be used; the OpenTelemetry SDK only when something is exported."""
    assert imported_at_start(*environment) == imported


def test_the_grpc_instrumentation_is_imported_when_the_server_exports_traces():
    code = (
        "import sys\n"
        "from toolwire.server import app\n"
        "from toolwire.server.telemetry_setup import telemetry_from_environment\n"
        "assert 'opentelemetry.instrumentation.grpc' not in sys.modules\n"
        "setup = telemetry_from_environment({'OTEL_TRACES_EXPORTER': 'console'})\n"
        "print(len(app._tracing_interceptors(setup)), 'opentelemetry.instrumentation.grpc' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True"]

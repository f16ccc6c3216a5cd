"""`toolwire health` in process: against an in-process server, and what the command must not import."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from toolwire.server.probe import NOT_SERVING, SERVING, Probe, check


async def test_serving_then_not_serving_once_shutdown_begins(server):
    probe = Probe(address=f"127.0.0.1:{server.port}", timeout_seconds=5)
    assert await _check(probe) == (SERVING, "SERVING")
    await server.begin_shutdown()
    assert await _check(probe) == (NOT_SERVING, "NOT_SERVING")


async def _check(probe: Probe) -> tuple[int, str]:
    # The probe is synchronous; the in-process server needs this loop free to answer it.
    return await asyncio.to_thread(check, probe)


@pytest.mark.parametrize("missing", ["--tls-cert-file", "--tls-key-file"])
def test_a_client_certificate_needs_its_key(tmp_path, missing):
    from toolwire.server.cli import main

    pem = tmp_path / "x.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    other = "--tls-key-file" if missing == "--tls-cert-file" else "--tls-cert-file"
    assert main(["health", "--address", "127.0.0.1:1", other, str(pem)]) == 2


def test_the_health_command_does_not_import_the_provider_sdks():
    """A probe runs every few seconds under a short timeout: the SDKs take seconds to import."""
    code = (
        "import sys; from toolwire.server import cli; "
        "cli.main(['health', '--address', 'not an address']); "
        "print(sorted(m for m in ('openai', 'anthropic', 'httpx2') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr

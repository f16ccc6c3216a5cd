"""`toolwire health`: one grpc.health.v1 Check against a running server, for container HEALTHCHECKs
and Kubernetes exec probes. Exit 0 when SERVING, 1 otherwise (including no answer)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from toolwire.server.addresses import parse_address
from toolwire.server.tls import channel_credentials

SERVING = 0
NOT_SERVING = 1


@dataclass(slots=True, frozen=True)
class Probe:
    """What to check and how to connect."""

    address: str
    service: str = ""
    timeout_seconds: float = 5.0
    tls: bool = False
    """Connect with TLS (implied by any of the files below)."""
    ca_file: Path | None = None
    """The CA that signed the server's certificate; None: the system roots."""
    cert_file: Path | None = None
    key_file: Path | None = None
    """A client certificate and key, for a server that requires mutual TLS."""
    server_name: str | None = None
    """The name to verify the server's certificate against, when it differs from the host."""


def check(probe: Probe) -> tuple[int, str]:
    """(exit code, line to print): the serving status, or why there is none."""
    target = parse_address(probe.address).dial_target()
    with _channel(probe, target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(
                health_pb2.HealthCheckRequest(service=probe.service), timeout=probe.timeout_seconds
            )
        except grpc.RpcError as error:
            return NOT_SERVING, _explain(error, target, probe)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return (SERVING if response.status == health_pb2.HealthCheckResponse.SERVING else NOT_SERVING), status


def _channel(probe: Probe, target: str) -> grpc.Channel:
    if not (probe.tls or probe.ca_file or probe.cert_file or probe.key_file):
        return grpc.insecure_channel(target)
    options = [("grpc.ssl_target_name_override", probe.server_name)] if probe.server_name else []
    credentials = channel_credentials(probe.ca_file, probe.cert_file, probe.key_file)
    return grpc.secure_channel(target, credentials, options=options)


def _explain(error: grpc.RpcError, target: str, probe: Probe) -> str:
    code = error.code()
    if code is grpc.StatusCode.NOT_FOUND:
        return f"SERVICE_UNKNOWN: the server at {target} has no health status for {probe.service!r}"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"NO_ANSWER: {target} did not answer within {probe.timeout_seconds:g} s"
    details = error.details() or ""
    return f"NO_ANSWER: {target}: {code.name}: {details}"


def main(probe: Probe) -> int:
    """Runs the check, prints the status on stdout (or why there is none on stderr), returns the code."""
    exit_code, line = check(probe)
    print(line, file=sys.stderr if line.startswith("NO_ANSWER") else sys.stdout, flush=True)
    return exit_code

"""The `toolwire` command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from toolwire.server.addresses import AddressError
from toolwire.server.probe import Probe
from toolwire.server.probe import main as probe_main
from toolwire.server.settings import Limits, ServerSettings
from toolwire.server.tls import TlsError

QUIET_LIBRARIES = ("openai", "anthropic", "httpx2", "httpcore2")
"""Libraries whose INFO/DEBUG logs are held back even at --log-level DEBUG: they log every request,
and the SDKs' debug logs include request bodies (prompts). Our own log lines say what happened."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolwire", description="Streaming LLM calls with tool calling, over gRPC."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the gRPC server")
    defaults = ServerSettings()
    limits = Limits()
    serve_parser.add_argument(
        "--listen",
        default=defaults.listen,
        help="host:port to listen on; port 0 picks a free one (default %(default)s)",
    )
    serve_parser.add_argument(
        "--scripts",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a directory of <name>.json scripts served as scripted/<name> (repeatable)",
    )
    serve_parser.add_argument(
        "--max-tool-rounds",
        type=int,
        default=defaults.default_max_tool_rounds,
        help="tool rounds when a chat asks for 0 (default %(default)s)",
    )
    serve_parser.add_argument(
        "--tool-timeout",
        type=float,
        default=defaults.default_tool_timeout_seconds,
        metavar="SECONDS",
        help="tool timeout when a chat sets none (default %(default)s)",
    )
    serve_parser.add_argument(
        "--max-tool-result-bytes",
        type=int,
        default=limits.max_tool_result_bytes,
        help="largest ToolResult.content accepted (default %(default)s)",
    )
    serve_parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=limits.max_request_bytes,
        help="largest single ChatRequest accepted (default %(default)s)",
    )
    serve_parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("TOOLWIRE_CONFIG") or None,
        metavar="FILE",
        help="TOML file of providers, aliases and retries (default: $TOOLWIRE_CONFIG, else none)",
    )
    serve_parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    _add_health_command(commands)
    return parser  # fmt: skip


def _add_health_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    health_parser = commands.add_parser(
        "health",
        help="check a running server's grpc.health.v1 status: exit 0 when SERVING, 1 otherwise",
        description="Checks a running server's grpc.health.v1 status and prints it; exits 0 when "
        "SERVING, 1 otherwise (NOT_SERVING, unknown service, no answer). Health checks need no token.",
    )
    listen = os.environ.get("TOOLWIRE_LISTEN", "").split(",")[0].strip()
    health_parser.add_argument(
        "--address",
        default=listen or "127.0.0.1:50051",
        help="host:port or unix:/path of the server (default: the first $TOOLWIRE_LISTEN address, "
        "else 127.0.0.1:50051; a wildcard host such as 0.0.0.0 is checked on loopback)",
    )
    health_parser.add_argument(
        "--service", default="", help="the service to check (default: the whole server)"
    )
    health_parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="default %(default)s"
    )
    health_parser.add_argument(
        "--tls", action="store_true", help="connect with TLS, trusting the system roots"
    )
    health_parser.add_argument(
        "--tls-ca-file", type=Path, metavar="FILE", help="connect with TLS, trusting this CA (PEM)"
    )
    health_parser.add_argument(
        "--tls-cert-file", type=Path, metavar="FILE", help="client certificate for mutual TLS (PEM)"
    )
    health_parser.add_argument(
        "--tls-key-file", type=Path, metavar="FILE", help="client key for mutual TLS (PEM)"
    )
    health_parser.add_argument(
        "--tls-server-name", metavar="NAME", help="verify the server certificate against NAME"
    )


def _health(arguments: argparse.Namespace) -> int:
    probe = Probe(
        address=arguments.address,
        service=arguments.service,
        timeout_seconds=arguments.timeout,
        tls=arguments.tls,
        ca_file=arguments.tls_ca_file,
        cert_file=arguments.tls_cert_file,
        key_file=arguments.tls_key_file,
        server_name=arguments.tls_server_name,
    )
    try:
        return probe_main(probe)
    except (AddressError, TlsError) as error:
        print(f"toolwire health: {error}", file=sys.stderr)
        return 2


def settings_from_arguments(arguments: argparse.Namespace) -> ServerSettings:
    """Builds ServerSettings from parsed `serve` arguments."""
    limits = dataclasses.replace(
        Limits(),
        max_tool_result_bytes=arguments.max_tool_result_bytes,
        max_request_bytes=arguments.max_request_bytes,
    )
    return ServerSettings(
        listen=arguments.listen,
        script_dirs=tuple(arguments.scripts),
        default_max_tool_rounds=arguments.max_tool_rounds,
        default_tool_timeout_seconds=arguments.tool_timeout,
        limits=limits,
        config_path=arguments.config,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `toolwire` command."""
    arguments = _parser().parse_args(argv)
    if arguments.command == "health":
        return _health(arguments)
    logging.basicConfig(level=arguments.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for library in QUIET_LIBRARIES:
        logging.getLogger(library).setLevel(logging.WARNING)
    settings = settings_from_arguments(arguments)
    # Imported here: the provider SDKs take seconds to import, which `toolwire health` must not pay.
    from toolwire.server.app import serve
    from toolwire.server.models.config import ConfigError
    from toolwire.server.models.scripted import ScriptError

    try:
        asyncio.run(serve(settings))
    except (ScriptError, ConfigError) as error:
        print(f"toolwire: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"toolwire: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

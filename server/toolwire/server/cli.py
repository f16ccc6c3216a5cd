"""The `toolwire` command line: `serve`, `chat`, `health` and `check-config`.

Only `serve` and `check-config` import the server and the provider SDKs (seconds of imports):
`toolwire health` runs every few seconds as a probe and must start at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from toolwire.server import options
from toolwire.server.addresses import AddressError
from toolwire.server.probe import Probe
from toolwire.server.probe import main as probe_main
from toolwire.server.tls import TlsError

if TYPE_CHECKING:
    from toolwire.server.settings import ServerSettings

EXIT_CONFIG = 2
"""Exit code for a bad setting, config file or script (also argparse's code for a bad flag)."""
EXIT_RUNTIME = 1
"""Exit code for a failure to serve (an address in use, a missing certificate)."""

Result = TypeVar("Result")


def run_loop(main: Coroutine[Any, Any, Result], use_uvloop: bool = True) -> Result:
    """Runs `main` to completion on a new event loop, as asyncio.run does: uvloop's when it is wanted
    and installed (~20% less CPU per grpc.aio message here), else the standard one."""
    with asyncio.Runner(loop_factory=_uvloop_factory() if use_uvloop else None) as runner:
        return runner.run(main)


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # not installed (or on Windows, where it does not run): the standard loop
        return None
    return uvloop.new_event_loop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolwire", description="Streaming LLM calls with tool calling, over gRPC."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve",
        help="run the gRPC server",
        description="Runs the gRPC server. Every setting can also come from the config file's [server] "
        "table or an environment variable; flags win over the environment, which wins over the file "
        "(docs/configuration.md). The bearer token is read from the environment only.",
    )
    serve_parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML file of providers, aliases, retries and [server] settings (default: $TOOLWIRE_CONFIG)",
    )
    options.add_flags(serve_parser)
    _add_health_command(commands)
    check_parser = commands.add_parser(
        "check-config",
        help="validate a config file and summarise it (exit 0), or say what is wrong and where (exit 2)",
    )
    check_parser.add_argument("file", type=Path, metavar="FILE")
    _add_chat_command(commands)
    return parser


def _add_chat_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chat_parser = commands.add_parser(
        "chat",
        help="stream a model's answer in the terminal, with demo tools (weather, time, calculator)",
        description="Streams MODEL's answer to PROMPT on stdout; tool calls and a summary go to stderr. "
        "The demo tools get_weather (made-up data), get_time and calculate run in this process. "
        "Without --target a private server runs in-process with the usual configuration (config "
        "file, OPENAI_API_KEY, ANTHROPIC_API_KEY, ...). Example: toolwire chat scripted/weather hi",
    )
    chat_parser.add_argument("model", metavar="MODEL", help="provider/model-name or an alias")
    chat_parser.add_argument("prompt", metavar="PROMPT", help="the question; - reads it from stdin")
    chat_parser.add_argument("--system", metavar="TEXT", help="a system message before the prompt")
    chat_parser.add_argument(
        "--target",
        metavar="ADDRESS",
        help="a running server (host:port or unix:/path) instead of a private one",
    )
    chat_parser.add_argument("--no-tools", action="store_true", help="offer the model no tools")
    chat_parser.add_argument(
        "--max-tool-rounds", type=int, default=0, metavar="N", help="default: the server's"
    )
    chat_parser.add_argument(
        "--config", type=Path, default=None, metavar="FILE", help="config file (default: $TOOLWIRE_CONFIG)"
    )


def _add_health_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    health_parser = commands.add_parser(
        "health",
        help="check a running server's grpc.health.v1 status: exit 0 when SERVING, 1 otherwise",
        description="Checks a running server's grpc.health.v1 status and prints it; exits 0 when "
        "SERVING, 1 otherwise (NOT_SERVING, unknown service, no answer). Health checks need no token.",
    )
    listen = options.environment_listen()
    health_parser.add_argument(
        "--address",
        default=listen[0] if listen else "127.0.0.1:50051",
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
        return EXIT_CONFIG


def _serve(arguments: argparse.Namespace) -> int:
    # Imported here: the provider SDKs take seconds to import, which `toolwire health` must not pay.
    from toolwire.server.logs import configure_logging
    from toolwire.server.models.config import ConfigError
    from toolwire.server.setup import settings_from

    config_path = _config_path(arguments.config)
    try:
        settings = settings_from(config_path, os.environ, vars(arguments))
    except (ConfigError, options.SettingsError) as error:
        print(f"toolwire: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings)
    if settings.workers > 1:
        from toolwire.server.workers import supervise

        try:
            return run_loop(supervise(settings), settings.uvloop)
        except OSError as error:
            print(f"toolwire: {error}", file=sys.stderr)
            return EXIT_RUNTIME
    return serve_settings(settings)


def serve_settings(settings: ServerSettings) -> int:
    """Serves until SIGTERM or SIGINT; returns the exit code (a worker process runs this too)."""
    from toolwire.server.app import serve
    from toolwire.server.models.config import ConfigError
    from toolwire.server.models.scripted import ScriptError

    try:
        run_loop(serve(settings), settings.uvloop)
    except (ScriptError, ConfigError, TlsError) as error:
        print(f"toolwire: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as error:
        print(f"toolwire: {error}", file=sys.stderr)
        return EXIT_RUNTIME
    return 0


def _check_config(arguments: argparse.Namespace) -> int:
    from toolwire.server.setup import check_config

    exit_code, text = check_config(arguments.file)
    print(text, file=sys.stdout if exit_code == 0 else sys.stderr)
    return exit_code


def _chat(arguments: argparse.Namespace) -> int:
    from toolwire.server.chat_command import ChatCommand, prompt_text, run_chat
    from toolwire.server.models.config import ConfigError
    from toolwire.server.models.scripted import ScriptError
    from toolwire.server.setup import settings_from

    command = ChatCommand(
        model=arguments.model,
        prompt=prompt_text(arguments.prompt),
        system=arguments.system,
        target=arguments.target,
        token=os.environ.get("TOOLWIRE_AUTH_TOKEN") or None,
        use_tools=not arguments.no_tools,
        max_tool_rounds=arguments.max_tool_rounds,
        config_path=_config_path(arguments.config),
    )
    try:
        # The private server's settings choose the loop; a chat to --target reads no config.
        use_uvloop = command.target is not None or settings_from(command.config_path, os.environ, {}).uvloop
        return run_loop(run_chat(command, sys.stdout, sys.stderr), use_uvloop)
    except (ScriptError, ConfigError, options.SettingsError) as error:
        print(f"toolwire: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _config_path(flag: Path | None) -> Path | None:
    """--config, else $TOOLWIRE_CONFIG, else none."""
    if flag is not None:
        return flag
    return Path(os.environ["TOOLWIRE_CONFIG"]) if os.environ.get("TOOLWIRE_CONFIG") else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `toolwire` command."""
    arguments = _parser().parse_args(argv)
    if arguments.command == "health":
        return _health(arguments)
    if arguments.command == "check-config":
        return _check_config(arguments)
    if arguments.command == "chat":
        return _chat(arguments)
    return _serve(arguments)


if __name__ == "__main__":
    sys.exit(main())

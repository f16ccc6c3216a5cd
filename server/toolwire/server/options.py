"""Every server setting in one table: its `[server]` key in the config file, its environment variable,
its `toolwire serve` flag, default and meaning. The file is read first, then the environment, then the
flags, each overriding the one before. docs/configuration.md is this table in prose (a test keeps them
in step).

This module imports nothing heavy: `toolwire health` builds its parser next to `serve`'s.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from toolwire.server.addresses import parse_address
from toolwire.server.option_values import (
    at_least,
    between,
    boolean,
    environment_name,
    health_address,
    integer,
    listen_address,
    one_of,
    seconds,
)
from toolwire.server.settings import MIB, Limits, ServerSettings, TlsFiles

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")


class SettingsError(ValueError):
    """A setting has a wrong type or value; the message names where it came from and what to write."""


@dataclass(slots=True, frozen=True)
class Option:
    """One setting. `parse` turns the text of an environment variable or flag into a value and raises
    ValueError with what is wrong; `check` returns what is wrong with a value of the right type."""

    key: str
    default: Any
    meaning: str
    parse: Callable[[str], Any]
    env: str | None = None
    flags: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None
    repeatable: bool = False
    """A list: the flag may be repeated, the environment variable holds a comma-separated list."""

    def problem(self, value: Any) -> str | None:
        return self.check(value) if self.check is not None else None


def _env(key: str) -> str:
    return "TOOLWIRE_" + key.upper()


def _flag(key: str) -> tuple[str, ...]:
    return ("--" + key.replace("_", "-"),)


OPTIONS: tuple[Option, ...] = (
    Option("listen", ("127.0.0.1:50051",), "addresses to listen on: host:port ([::1]:port for IPv6; "
           "port 0 picks a free one) or unix:/path/to.sock; the first is announced first",
           listen_address, _env("listen"), _flag("listen"), repeatable=True),
    Option("health_listen", (), "addresses (host:port) that serve only grpc.health.v1, in plaintext "
           "with no token: for kubelet's gRPC probe when listen is a Unix socket or uses TLS; none by "
           "default (listen serves health checks too)", health_address, _env("health_listen"),
           _flag("health_listen"), repeatable=True),
    Option("reflection", True, "serve gRPC reflection (grpcurl needs no proto files)", boolean,
           _env("reflection"), ("--reflection",)),
    Option("max_concurrent_chats", 256, "chats running at once; past it a new Chat ends with "
           "RESOURCE_EXHAUSTED", integer, _env("max_concurrent_chats"), _flag("max_concurrent_chats"),
           at_least(1)),
    Option("chat_deadline_seconds", 0.0, "longest a chat may run, then DEADLINE_EXCEEDED; 0: no limit "
           "(the client's own deadline still applies)", seconds, _env("chat_deadline_seconds"),
           _flag("chat_deadline_seconds"), at_least(0)),
    Option("shutdown_grace_seconds", 10.0, "after SIGTERM, how long running chats may finish before "
           "they end with UNAVAILABLE", seconds, _env("shutdown_grace_seconds"),
           _flag("shutdown_grace_seconds"), at_least(0)),
    Option("auth_token_env", "TOOLWIRE_AUTH_TOKEN", "the environment variable holding the bearer token "
           "every call must carry (health checks excepted); unset: no token", environment_name,
           None, _flag("auth_token_env")),
    Option("tls_cert_file", None, "PEM certificate chain: serve TLS (with tls_key_file)", Path,
           _env("tls_cert_file"), _flag("tls_cert_file")),
    Option("tls_key_file", None, "PEM private key of tls_cert_file", Path, _env("tls_key_file"),
           _flag("tls_key_file")),
    Option("tls_client_ca_file", None, "PEM CA: require client certificates it signed (mutual TLS)",
           Path, _env("tls_client_ca_file"), _flag("tls_client_ca_file")),
    Option("log_format", "text", "text, or json: one JSON object per line", one_of(LOG_FORMATS, str.lower),
           _env("log_format"), _flag("log_format")),
    Option("log_level", "INFO", "DEBUG, INFO, WARNING or ERROR (any case)", one_of(LOG_LEVELS, str.upper),
           _env("log_level"), _flag("log_level")),
    Option("scripts", (), "folders of <name>.json scripts served as scripted/<name>", Path, None,
           _flag("scripts"), repeatable=True),
    Option("max_tool_rounds", 10, "tool rounds when a chat asks for 0", integer, _env("max_tool_rounds"),
           _flag("max_tool_rounds"), between(1, Limits().max_tool_rounds)),
    Option("tool_timeout_seconds", 60.0, "seconds to wait for a tool result when a chat sets none",
           seconds, _env("tool_timeout_seconds"), ("--tool-timeout", "--tool-timeout-seconds"),
           between(0.001, Limits().max_tool_timeout_seconds)),
    Option("max_tool_result_bytes", MIB, "largest ToolResult.content accepted", integer,
           _env("max_tool_result_bytes"), _flag("max_tool_result_bytes"), at_least(1)),
    Option("max_request_bytes", 4 * MIB, "largest single ChatRequest accepted", integer,
           _env("max_request_bytes"), _flag("max_request_bytes"), at_least(1024)),
    Option("workers", 1, "server processes sharing the TCP port(s) (SO_REUSEPORT); more than 1: a "
           "supervisor starts them, restarts one that dies and forwards SIGTERM; TCP addresses only",
           integer, _env("workers"), _flag("workers"), at_least(1)),
    Option("uvloop", True, "run on uvloop when it is installed (less CPU per gRPC message); "
           "off: the standard asyncio loop", boolean, _env("uvloop"), ("--uvloop",)),
)  # fmt: skip

OPTIONS_BY_KEY = {option.key: option for option in OPTIONS}
PATH_KEYS = ("tls_cert_file", "tls_key_file", "tls_client_ca_file", "scripts")
"""Paths in the config file are relative to the file's folder."""


def resolve(
    table: Mapping[str, Any],
    source: str,
    environment: Mapping[str, str],
    flags: Mapping[str, Any],
    config_path: Path | None = None,
) -> ServerSettings:
    """The settings from the `[server]` table of `source`, then the environment, then flags (already
    parsed; None: not given). Raises SettingsError naming the key, variable or flag and what to fix."""
    values = {option.key: option.default for option in OPTIONS}
    values.update(_from_file(table, source, config_path))
    values.update(_from_environment(environment))
    for option in OPTIONS:
        value = flags.get(option.key)
        if value is not None and value != []:
            _require(option, value, option.flags[0])
            values[option.key] = tuple(value) if option.repeatable else value
    return _settings(values, environment, config_path)


def _from_file(table: Mapping[str, Any], source: str, config_path: Path | None) -> dict[str, Any]:
    folder = config_path.parent if config_path is not None else Path()
    values: dict[str, Any] = {}
    for key, raw in table.items():
        option = OPTIONS_BY_KEY.get(key)
        if option is None:
            known = ", ".join(OPTIONS_BY_KEY)
            raise SettingsError(f"{source}: unknown key server.{key}; expected one of: {known}")
        where = f"{source}: server.{key}"
        items = _file_items(option, raw, where)
        converted = [_convert_file_value(option, item, where) for item in items]
        if key in PATH_KEYS:
            converted = [folder / item for item in converted]
        values[key] = tuple(converted) if option.repeatable else converted[0]
        _require(option, values[key], f"{source}: server.{key}")
    return values


def _file_items(option: Option, raw: Any, where: str) -> list[Any]:
    if not option.repeatable:
        return [raw]
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return raw
    raise SettingsError(f"{where} must be a string or a list of strings (got {raw!r})")


_FILE_TYPES: tuple[tuple[type, type | tuple[type, ...], str], ...] = (
    (bool, bool, "true or false"),
    (float, (int, float), "a number"),
    (int, int, "a whole number"),
)
"""(type of the default, TOML types accepted, how to say it); anything else is a string."""


def _convert_file_value(option: Option, raw: Any, where: str) -> Any:
    """A TOML value of the type the option's default has (a string for addresses, paths and names)."""
    for default_type, accepted, wanted in _FILE_TYPES:
        if isinstance(option.default, default_type):
            if not isinstance(raw, accepted) or (isinstance(raw, bool) and default_type is not bool):
                raise SettingsError(f"{where} must be {wanted} (got {raw!r})")
            return float(raw) if isinstance(raw, int | float) and default_type is float else raw
    if not isinstance(raw, str):
        raise SettingsError(f"{where} must be a string (got {raw!r})")
    return _parse(option, raw, where)


def _from_environment(environment: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.env is None or option.env not in environment:
            continue
        text = environment[option.env]
        where = f"environment variable {option.env}"
        if option.repeatable:
            values[option.key] = tuple(
                _parse(option, part, where) for part in text.split(",") if part.strip()
            )
        else:
            values[option.key] = _parse(option, text, where)
        _require(option, values[option.key], where)
    return values


def _parse(option: Option, text: str, where: str) -> Any:
    try:
        return option.parse(text)
    except ValueError as error:
        raise SettingsError(f"{where} {error}") from None


def _require(option: Option, value: Any, where: str) -> None:
    for item in value if option.repeatable else (value,):
        problem = option.problem(item)
        if problem is not None:
            raise SettingsError(f"{where} {problem}")


def _settings(
    values: dict[str, Any], environment: Mapping[str, str], config_path: Path | None
) -> ServerSettings:
    if not values["listen"]:
        raise SettingsError("listen is empty: give at least one address, e.g. 127.0.0.1:50051")
    limits = replace(
        Limits(),
        max_tool_result_bytes=values["max_tool_result_bytes"],
        max_request_bytes=values["max_request_bytes"],
    )
    return ServerSettings(
        listen=tuple(values["listen"]),
        health_listen=_health_listen(values["health_listen"], values["listen"]),
        script_dirs=tuple(values["scripts"]),
        default_max_tool_rounds=values["max_tool_rounds"],
        default_tool_timeout_seconds=values["tool_timeout_seconds"],
        limits=limits,
        config_path=config_path,
        reflection=values["reflection"],
        max_concurrent_chats=values["max_concurrent_chats"],
        chat_deadline_seconds=values["chat_deadline_seconds"],
        shutdown_grace_seconds=values["shutdown_grace_seconds"],
        auth_token=_token(values["auth_token_env"], environment),
        auth_token_env=values["auth_token_env"],
        tls=_tls(values["tls_cert_file"], values["tls_key_file"], values["tls_client_ca_file"]),
        log_format=values["log_format"],
        log_level=values["log_level"],
        workers=_workers(values["workers"], values["listen"]),
        uvloop=values["uvloop"],
    )  # fmt: skip


def _health_listen(health_listen: Sequence[str], listen: Sequence[str]) -> tuple[str, ...]:
    """The health-only addresses, none of them a listen address (one port cannot serve both)."""
    listen_targets = {parse_address(text).grpc_target() for text in listen}
    for text in health_listen:
        address = parse_address(text)
        if address.port != 0 and address.grpc_target() in listen_targets:
            raise SettingsError(
                f"health_listen {text} is also a listen address, which serves health checks already: "
                "give the health listener a port of its own, or leave it out"
            )
    return tuple(health_listen)


def _workers(workers: int, listen: Sequence[str]) -> int:
    """Several workers share TCP ports with SO_REUSEPORT; a Unix socket cannot be shared that way."""
    if workers == 1:
        return workers
    unix = [text for text in listen if parse_address(text).is_unix]
    if unix:
        raise SettingsError(
            f"workers = {workers} needs TCP listen addresses only: {unix[0]} cannot be shared by several "
            "processes (SO_REUSEPORT is for TCP ports); listen on host:port instead, or set workers to 1"
        )
    if not hasattr(socket, "SO_REUSEPORT"):
        raise SettingsError(
            f"workers = {workers} needs SO_REUSEPORT, which this system lacks: set workers to 1"
        )
    return workers


def _token(variable: str, environment: Mapping[str, str]) -> str | None:
    token = environment.get(variable)
    if token is None:
        return None
    if not token.strip():
        raise SettingsError(
            f"environment variable {variable} is set but empty: set it to the token, "
            "or unset it to run without one"
        )
    return token.strip()


def _tls(cert_file: Path | None, key_file: Path | None, client_ca_file: Path | None) -> TlsFiles | None:
    if cert_file is None and key_file is None:
        if client_ca_file is not None:
            raise SettingsError(
                "tls_client_ca_file needs tls_cert_file and tls_key_file: mutual TLS is TLS plus a client CA"
            )
        return None
    if cert_file is None or key_file is None:
        missing = "tls_key_file" if key_file is None else "tls_cert_file"
        raise SettingsError(f"TLS needs both tls_cert_file and tls_key_file: set {missing} too")
    return TlsFiles(cert_file, key_file, client_ca_file)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Adds every option's flag to `serve`'s parser (default None: not given)."""
    for option in OPTIONS:
        if isinstance(option.default, bool):
            parser.add_argument(
                *option.flags, dest=option.key, action=argparse.BooleanOptionalAction, default=None,
                help=_help(option),
            )  # fmt: skip
            continue
        parser.add_argument(
            *option.flags,
            dest=option.key,
            type=_argparse_type(option),
            action="append" if option.repeatable else "store",
            default=None,
            metavar=_metavar(option.key),
            help=_help(option),
        )


def _metavar(key: str) -> str:
    names = {"listen": "ADDRESS", "health_listen": "ADDRESS", "scripts": "DIR", "auth_token_env": "NAME",
             "log_format": "FORMAT", "log_level": "LEVEL"}  # fmt: skip
    if key in names:
        return names[key]
    if key.endswith("_seconds"):
        return "SECONDS"
    return "FILE" if key.endswith("_file") else "N"


def _help(option: Option) -> str:
    default = option.default
    shown = ", ".join(default) if isinstance(default, tuple) else default
    suffix = f" (default {shown})" if shown not in (None, "", ()) else ""
    env = f"; env {option.env}" if option.env else ""
    return (option.meaning + suffix + env).replace("%", "%%")


def _argparse_type(option: Option) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return option.parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def environment_listen(environment: Mapping[str, str] | None = None) -> Sequence[str]:
    """The addresses of $TOOLWIRE_LISTEN (comma-separated), for `toolwire health`'s default."""
    text = (os.environ if environment is None else environment).get("TOOLWIRE_LISTEN", "")
    return [part.strip() for part in text.split(",") if part.strip()]

"""How the text of a setting (an environment variable, a flag, a string in the config file) becomes
a value, and the checks a value must pass. Each parser raises ValueError saying what is wrong and
what to write; each check returns that text, or None. options.py names them in its table."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from toolwire.server.addresses import AddressError, parse_address

_ENVIRONMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"must be a whole number (got {text!r})") from None


def seconds(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"must be a number of seconds (got {text!r})") from None


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false (got {text!r})")


def one_of(choices: tuple[str, ...], fold: Callable[[str], str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = fold(text.strip())
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)} (got {text!r})")
        return value

    return parse


def listen_address(text: str) -> str:
    try:
        parse_address(text)
    except AddressError as error:
        raise ValueError(str(error)) from None
    return text.strip()


def health_address(text: str) -> str:
    if parse_address(listen_address(text)).is_unix:
        raise ValueError(
            f"takes host:port, e.g. 0.0.0.0:8086 (got {text!r}): a probe that can reach a Unix socket "
            "can check the listen socket itself"
        )
    return text.strip()


def environment_name(text: str) -> str:
    if not _ENVIRONMENT_NAME.fullmatch(text):
        raise ValueError(f"must be an environment variable name such as TOOLWIRE_AUTH_TOKEN (got {text!r})")
    return text


def at_least(minimum: float, unit: str = "") -> Callable[[Any], str | None]:
    return lambda value: f"must be at least {minimum}{unit} (got {value})" if value < minimum else None


def between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must be from {low} to {high} (got {value})"

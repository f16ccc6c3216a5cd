"""Listen addresses: TCP `host:port` (`[::1]:port` for IPv6) or a Unix domain socket (`unix:PATH`).

A sidecar usually shares a Unix socket with its application (no port to allocate, file permissions
instead of network exposure); TCP stays on loopback unless told otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

UNIX_PREFIX = "unix:"

_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "[::1]"}
"""Where a local client connects when the server listens on every interface."""


class AddressError(ValueError):
    """An address is malformed or cannot be used; the message says what to write instead."""


@dataclass(slots=True, frozen=True)
class Address:
    """One parsed address. Exactly one of `unix_path` and (`host`, `port`) is meaningful."""

    host: str = ""
    """The host as written, IPv6 in brackets (`[::1]`); empty for a Unix socket."""
    port: int = 0
    """0 picks a free port when listening."""
    unix_path: Path | None = None
    """The absolute socket path of a `unix:` address."""

    @property
    def is_unix(self) -> bool:
        return self.unix_path is not None

    def grpc_target(self, port: int | None = None) -> str:
        """The address as gRPC spells it, with `port` instead of the parsed one when given."""
        if self.unix_path is not None:
            return f"{UNIX_PREFIX}{self.unix_path}"
        return f"{self.host}:{self.port if port is None else port}"

    def dial_target(self, port: int | None = None) -> str:
        """Where a client on this machine connects: a wildcard host becomes loopback."""
        if self.unix_path is not None:
            return self.grpc_target()
        host = _WILDCARD_TO_LOOPBACK.get(self.host, self.host)
        return f"{host}:{self.port if port is None else port}"


def parse_address(text: str) -> Address:
    """Parses `host:port`, `[v6]:port`, `unix:relative/or/absolute.sock` or `unix:///absolute.sock`."""
    text = text.strip()
    if text.startswith(UNIX_PREFIX):
        return _parse_unix(text)
    host, colon, port_text = text.rpartition(":")
    if not colon or not port_text.isdigit() or int(port_text) > 65535:
        raise AddressError(
            f"{text!r} is not an address: write host:port (127.0.0.1:50051, [::1]:50051, 0.0.0.0:50051) "
            "or unix:/path/to.sock"
        )
    if not host:  # gRPC refuses an empty host; say which one to write rather than fail to bind
        raise AddressError(
            f"{text!r} has no host: write 127.0.0.1:{port_text} (this machine only), "
            f"0.0.0.0:{port_text} (every IPv4 interface) or [::]:{port_text} (every interface)"
        )
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise AddressError(f"{text!r}: put an IPv6 host in brackets, e.g. [{host}]:{port_text}")
    return Address(host=host, port=int(port_text))


def _parse_unix(text: str) -> Address:
    rest = text.removeprefix(UNIX_PREFIX)
    if rest.startswith("//"):
        # unix://authority/path is a URI form; only an empty authority (unix:///abs/path) is meaningful.
        if not rest.startswith("///"):
            raise AddressError(f"{text!r}: write unix:///absolute/path or unix:/absolute/path")
        rest = rest[2:]
    if not rest:
        raise AddressError(f"{text!r} names no socket file: write unix:/path/to.sock")
    return Address(unix_path=Path(os.path.abspath(rest)))


def prepare_unix_socket(path: Path) -> None:
    """Makes `path` free to bind: removes a stale socket file nothing answers on; refuses a live one
    or a file that is not a socket, so a second server never steals the first one's socket."""
    if not path.parent.is_dir():
        raise AddressError(f"cannot listen on unix:{path}: the folder {path.parent} does not exist")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AddressError(f"cannot listen on unix:{path}: the file exists and is not a socket; remove it")
    if _answers(path):
        raise AddressError(f"cannot listen on unix:{path}: another process is listening on it")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as error:
            if error.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return False
            raise AddressError(f"cannot listen on unix:{path}: {error.strerror}") from None
    return True


def remove_unix_socket(path: Path) -> None:
    """Removes our socket file at exit (if it is still a socket: never someone else's file)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()

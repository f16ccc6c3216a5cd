"""Binding the server to its addresses: TCP or Unix sockets, plaintext or TLS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from toolwire.server.addresses import Address, AddressError, parse_address, prepare_unix_socket
from toolwire.server.settings import TlsFiles
from toolwire.server.tls import server_credentials


@dataclass(slots=True, frozen=True)
class Bound:
    """One address the server listens on."""

    address: Address
    port: int
    """The TCP port (the one chosen, for port 0); 0 for a Unix socket."""

    @property
    def announced(self) -> str:
        """`host:port` or `unix:/absolute/path`, as `toolwire listening on ...` prints it."""
        return self.address.grpc_target(self.port)


def bind(server: grpc.aio.Server, addresses: Sequence[str], tls: TlsFiles | None = None) -> list[Bound]:
    """Adds a port per address, in order, with TLS when `tls` is given. Raises OSError when one cannot
    be bound."""
    credentials = server_credentials(tls) if tls is not None else None
    bound: list[Bound] = []
    for text in addresses:
        try:
            address = parse_address(text)
            if address.unix_path is not None:
                prepare_unix_socket(address.unix_path)
        except AddressError as error:
            raise OSError(str(error)) from None
        port = _add_port(server, address, credentials)
        bound.append(Bound(address, 0 if address.is_unix else port))
    return bound


def _add_port(server: grpc.aio.Server, address: Address, credentials: grpc.ServerCredentials | None) -> int:
    target = address.grpc_target()
    try:
        if credentials is None:
            port = server.add_insecure_port(target)
        else:
            port = server.add_secure_port(target, credentials)
    except RuntimeError:  # grpc's way of saying the bind failed
        port = 0
    if port == 0:
        reason = (
            "the socket cannot be created there"
            if address.is_unix
            else "the address is in use or not available here"
        )
        raise OSError(f"could not listen on {target}: {reason}")
    return port

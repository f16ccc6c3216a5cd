"""TLS and mutual TLS credentials from PEM files, for the server and for `toolwire health`."""

from __future__ import annotations

from pathlib import Path

import grpc

from toolwire.server.settings import TlsFiles


class TlsError(ValueError):
    """A certificate or key file is missing or not PEM; the message names the setting and the file."""


def read_pem(path: Path, setting: str, marker: str) -> bytes:
    """The bytes of a PEM file, after checking it holds a `-----BEGIN ...{marker}` block."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TlsError(f"{setting}: cannot read {path}: {error.strerror}") from None
    if b"-----BEGIN " not in data or marker.encode() not in data:
        raise TlsError(f"{setting}: {path} holds no PEM {marker}; give a PEM-encoded file")
    return data


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """TLS credentials; with a client CA, clients must present a certificate it signed."""
    key = read_pem(files.key_file, "tls_key_file", "PRIVATE KEY")
    chain = read_pem(files.cert_file, "tls_cert_file", "CERTIFICATE")
    client_ca = (
        read_pem(files.client_ca_file, "tls_client_ca_file", "CERTIFICATE")
        if files.client_ca_file is not None
        else None
    )
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def channel_credentials(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> grpc.ChannelCredentials:
    """Client TLS credentials: trust `ca_file` (None: the system roots), and present `cert_file` and
    `key_file` for mutual TLS when both are given."""
    if (cert_file is None) != (key_file is None):
        raise TlsError("a client certificate needs both --tls-cert-file and --tls-key-file")
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem(ca_file, "--tls-ca-file", "CERTIFICATE") if ca_file else None,
        private_key=read_pem(key_file, "--tls-key-file", "PRIVATE KEY") if key_file else None,
        certificate_chain=read_pem(cert_file, "--tls-cert-file", "CERTIFICATE") if cert_file else None,
    )

"""Server settings: defaults and limits. `options.py` fills them from the config file's `[server]`
table, the environment and `toolwire serve` flags (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the type only: settings stay a plain module of values (chat_count maps a file)
    from toolwire.server.chat_count import ChatCountFile

MIB = 1024 * 1024


@dataclass(slots=True, frozen=True)
class Limits:
    """Size and count limits; a request past one gets INVALID_ARGUMENT or RESOURCE_EXHAUSTED."""

    max_request_bytes: int = 4 * MIB
    """Largest single ChatRequest message (enforced by gRPC: RESOURCE_EXHAUSTED)."""
    max_messages: int = 1_000
    """Most messages in ChatStart.messages."""
    max_tools: int = 128
    """Most tools in ChatStart.tools."""
    max_tool_schema_bytes: int = 64 * 1024
    """Largest parameters_json_schema of one tool."""
    max_tool_result_bytes: int = 1 * MIB
    """Largest ToolResult.content."""
    max_tool_rounds: int = 100
    """Highest max_tool_rounds a chat may ask for."""
    max_tool_timeout_seconds: float = 3600.0
    """Longest tool_timeout a chat may ask for."""
    max_text_coalesce_window_seconds: float = 1.0
    """Longest text_coalesce_window a chat may ask for: text held longer would read as a stalled stream."""


@dataclass(slots=True, frozen=True)
class TlsFiles:
    """The server's PEM certificate chain and key, and (for mutual TLS) the CA that must have signed
    its clients' certificates."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca_file is not None


@dataclass(slots=True, frozen=True)
class ServerSettings:
    """Everything `toolwire serve` is configured with."""

    listen: tuple[str, ...] = ("127.0.0.1:50051",)
    """Addresses to listen on (`host:port` or `unix:PATH`); loopback by default (a sidecar). The
    first one is announced first."""
    health_listen: tuple[str, ...] = ()
    """TCP addresses (`host:port`) that serve grpc.health.v1 alone, in plaintext and with no token: for
    a probe that can reach neither the Unix socket nor a TLS listener, such as kubelet's native gRPC
    probe (it dials the pod IP, with no TLS and no metadata). Empty: health checks are served on the
    listen addresses only (they always are)."""
    script_dirs: tuple[Path, ...] = ()
    """Directories of extra scripts for the scripted provider."""
    default_max_tool_rounds: int = 10
    """max_tool_rounds when a chat sends 0."""
    default_tool_timeout_seconds: float = 60.0
    """tool_timeout when a chat sends none."""
    limits: Limits = Limits()
    config_path: Path | None = None
    """The TOML file of providers, aliases and retries (`--config`, `TOOLWIRE_CONFIG`); None: none."""
    reflection: bool = True
    """Serve grpc.reflection (grpcurl and friends need no proto files)."""
    max_concurrent_chats: int = 256
    """Chats running at once on the whole server (all its workers); past it a new Chat is refused with
    RESOURCE_EXHAUSTED as soon as its start arrives (refusal.py)."""
    chat_deadline_seconds: float = 0.0
    """Longest a chat may run before it ends with DEADLINE_EXCEEDED; 0: no server-side limit."""
    shutdown_grace_seconds: float = 10.0
    """How long running chats may go on after SIGTERM before they end with UNAVAILABLE."""
    auth_token: str | None = field(default=None, repr=False)
    """The bearer token every call must carry (health checks excepted); None: no token. A secret:
    read from the environment only, and never shown (not even by repr)."""
    auth_token_env: str = "TOOLWIRE_AUTH_TOKEN"
    """The environment variable the token was read from (named in logs and summaries; never the value)."""
    tls: TlsFiles | None = None
    """TLS (mutual when it has a client CA); None: plaintext."""
    log_format: str = "text"
    """`text` or `json` (one object per line)."""
    log_level: str = "INFO"
    workers: int = 1
    """Server processes sharing the TCP listen ports (SO_REUSEPORT); more than 1: `toolwire serve`
    supervises them (workers.py). max_concurrent_chats is the whole server's, shared by its workers."""
    uvloop: bool = True
    """Run the event loop on uvloop when it is installed (~20% less CPU per grpc.aio message);
    False, or uvloop missing: the standard asyncio loop."""
    chat_count_file: ChatCountFile | None = None
    """A worker's share of the server-wide chat count (chat_count.py): set by the supervisor for each
    worker it starts, never by users; None: a server of one process counts its own chats."""

    def __post_init__(self) -> None:
        for key in ("listen", "health_listen"):
            if isinstance(getattr(self, key), str):  # one address written as a plain string
                object.__setattr__(self, key, (getattr(self, key),))

"""Server settings: defaults and limits, set by `toolwire serve` flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


@dataclass(slots=True, frozen=True)
class ServerSettings:
    """Everything `toolwire serve` is configured with."""

    listen: str = "127.0.0.1:50051"
    """Address to listen on; loopback by default (a sidecar)."""
    script_dirs: tuple[Path, ...] = ()
    """Directories of extra scripts for the scripted provider."""
    default_max_tool_rounds: int = 10
    """max_tool_rounds when a chat sends 0."""
    default_tool_timeout_seconds: float = 60.0
    """tool_timeout when a chat sends none."""
    limits: Limits = Limits()
    config_path: Path | None = None
    """The TOML file of providers, aliases and retries (`--config`, `TOOLWIRE_CONFIG`); None: none."""

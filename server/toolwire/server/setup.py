"""From a config file, the environment and flags to `ServerSettings`; `toolwire check-config`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolwire.server import options
from toolwire.server.models import config
from toolwire.server.models.scripted import ScriptError, load_scripts
from toolwire.server.settings import ServerSettings


def settings_from(
    config_path: Path | None, environment: Mapping[str, str], flags: Mapping[str, Any]
) -> ServerSettings:
    """The server's settings: the file's `[server]` table, then the environment, then `flags`.
    Raises ConfigError (the file) or SettingsError (a value), each naming what to fix."""
    document = config.read_document(config_path) if config_path is not None else {}
    source = str(config_path) if config_path is not None else "the config"
    table = document.get("server", {})
    if not isinstance(table, dict):
        raise config.ConfigError(f"{source}: server must be a table ([server])")
    return options.resolve(table, source, environment, flags, config_path)


def check_config(path: Path) -> tuple[int, str]:
    """(exit code, text): a summary of a valid file, or what is wrong and where."""
    try:
        settings = settings_from(path, {}, {})
        models = config.parse(config.read_document(path), {}, source=str(path))
        for folder in settings.script_dirs:
            if not folder.is_dir():
                raise options.SettingsError(f"{path}: server.scripts: {folder} is not a folder")
        load_scripts(settings.script_dirs)
    except (config.ConfigError, options.SettingsError, ScriptError) as error:
        return 2, f"toolwire: {error}"
    return 0, "\n".join([f"{path}: valid", *_summary(settings, models)])


def _summary(settings: ServerSettings, models: config.ModelsConfig) -> list[str]:
    providers = ", ".join(
        f"{provider.name} ({provider.wire_api}"
        + (f", {provider.base_url}" if provider.base_url else "")
        + (f", key from ${provider.api_key_env}" if provider.api_key_env else "")
        + ")"
        for provider in models.providers
    )
    aliases = "; ".join(f"{alias} → {', '.join(chain)}" for alias, chain in models.aliases.items())
    tls = "off"
    if settings.tls is not None:
        tls = "mutual TLS" if settings.tls.mutual else "TLS"
    reflection = "on" if settings.reflection else "off"
    health_only = (
        [f"  health checks alone on {', '.join(settings.health_listen)}"] if settings.health_listen else []
    )
    return [
        f"providers: scripted, {providers}",
        f"aliases: {aliases or '(none)'}",
        f"server: listen {', '.join(settings.listen)}; tls {tls}; reflection {reflection}; "
        f"workers {settings.workers}",
        *health_only,
        f"  max_concurrent_chats {settings.max_concurrent_chats}; chat_deadline_seconds "
        f"{settings.chat_deadline_seconds:g}; shutdown_grace_seconds {settings.shutdown_grace_seconds:g}",
        f"  bearer token from ${settings.auth_token_env} (when set); log {settings.log_format} "
        f"{settings.log_level}",
        "(the file's values; the environment and flags of `toolwire serve` override them)",
    ]

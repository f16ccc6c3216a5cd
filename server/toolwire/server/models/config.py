"""The model configuration: providers, aliases with fallback chains, and the retry policy.

It comes from the environment (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `ANTHROPIC_API_KEY`,
`ANTHROPIC_BASE_URL`) and an optional TOML file; docs/providers.md documents every key. Errors say
which key of which file is wrong and what it should be.
"""

from __future__ import annotations

import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from toolwire.server.models.anthropic_messages import AnthropicOptions
from toolwire.server.models.openai_chat import OpenAIQuirks
from toolwire.server.models.resilience import RetryPolicy

WIRE_APIS = ("openai", "anthropic")
"""The wire APIs a provider can speak: Chat Completions (`openai`) or Messages (`anthropic`)."""

RESERVED_PROVIDERS = ("scripted",)

PRESETS: dict[str, dict[str, Any]] = {
    "openai": {},
    "compatible": {"max_tokens_field": "max_tokens", "parallel_tool_calls": False},
    "ollama": {"max_tokens_field": "max_tokens", "parallel_tool_calls": False},
    "vllm": {"max_tokens_field": "max_tokens", "parallel_tool_calls": False},
    "llamacpp": {"max_tokens_field": "max_tokens", "parallel_tool_calls": False},
    "lmstudio": {"max_tokens_field": "max_tokens", "parallel_tool_calls": False},
    "groq": {},
    "together": {"max_tokens_field": "max_tokens"},
    "deepseek": {"max_tokens_field": "max_tokens", "send_reasoning_back": True},
    "mistral": {"max_tokens_field": "max_tokens", "include_usage": False},
    "gemini": {"max_tokens_field": "max_tokens", "parallel_tool_calls": False},
    "openrouter": {"max_tokens_field": "max_tokens"},
}
"""Quirk defaults for known OpenAI-compatible servers (`preset = "..."`); `quirks` keys override."""

_BUILT_IN = {
    "openai": ("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", ("gpt-4.1", "gpt-4.1-mini", "gpt-4o-mini")),
    "anthropic": (
        "anthropic",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"),
    ),
}
"""Providers that exist without any config: name → (wire API, key variable, base URL variable, models)."""


class ConfigError(ValueError):
    """The model configuration is invalid; the message names the file and key."""


@dataclass(slots=True, frozen=True)
class ProviderSettings:
    """One configured provider."""

    name: str
    """The prefix of its model ids, e.g. `openai` in `openai/gpt-4.1`."""
    wire_api: str
    """`openai` or `anthropic`."""
    api_key: str | None
    """The key, read from the environment; None when not set."""
    api_key_env: str | None
    """The variable the key is read from, named in the error when it is missing."""
    key_required: bool
    """Hosted APIs need a key; local compatible servers often do not."""
    base_url: str | None
    """None: the SDK's default (the provider's public API)."""
    models: tuple[str, ...]
    """Models listed by ListModels; other names are passed to the provider as they are."""
    timeout_seconds: float = 60.0
    """How long a response (or the next chunk of a stream) may take before DEADLINE_EXCEEDED."""
    connect_timeout_seconds: float = 10.0
    """How long connecting may take."""
    quirks: OpenAIQuirks = field(default_factory=OpenAIQuirks)
    """For `openai` wire providers."""
    anthropic: AnthropicOptions = field(default_factory=AnthropicOptions)
    """For `anthropic` wire providers."""


@dataclass(slots=True, frozen=True)
class ModelsConfig:
    """Everything the model registry is built from."""

    providers: tuple[ProviderSettings, ...]
    aliases: Mapping[str, tuple[str, ...]]
    """Alias → the model ids it tries in order (a fallback chain; one id is a plain alias)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def load(path: Path | None, environment: Mapping[str, str]) -> ModelsConfig:
    """The configuration from `path` (optional) and the environment."""
    document = read_document(path) if path is not None else {}
    return parse(document, environment, source=str(path or "the environment"))


def read_document(path: Path) -> dict[str, Any]:
    """The parsed TOML file; ConfigError says why it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read the config file {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 (byte {error.start}); TOML files must be saved as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None


def parse(document: Mapping[str, Any], environment: Mapping[str, str], source: str) -> ModelsConfig:
    """The configuration from a parsed TOML document. Its `[server]` table is the server's own
    settings, read by `toolwire.server.options`."""
    _only_keys(document, ("providers", "aliases", "retry", "server"), source, "")
    tables = _table(document, "providers", source, "")
    names = list(_BUILT_IN) + [name for name in tables if name not in _BUILT_IN]
    providers = tuple(
        _provider(name, _table(tables, name, source, "providers."), environment, source) for name in names
    )
    aliases = _aliases(_table(document, "aliases", source, ""), {p.name for p in providers}, source)
    return ModelsConfig(providers, aliases, _retry(_table(document, "retry", source, ""), source))


def _provider(
    name: str, table: Mapping[str, Any], environment: Mapping[str, str], source: str
) -> ProviderSettings:
    where = f"providers.{name}"
    if name in RESERVED_PROVIDERS:
        raise ConfigError(f"{source}: [{where}]: the name {name!r} is reserved for the built-in provider")
    _only_keys(table, _PROVIDER_KEYS, source, where + ".")

    def value(key: str, kind: Any, default: Any) -> Any:
        return _get(table, key, kind, source, where, default)

    built_in = _BUILT_IN.get(name)
    wire_api = value("api", str, built_in[0] if built_in else None)
    if wire_api not in WIRE_APIS:
        raise ConfigError(f"{source}: {where}.api must be one of {', '.join(WIRE_APIS)} (got {wire_api!r})")
    key_env = value("api_key_env", str, built_in[1] if built_in else None)
    base_url = value("base_url", str, environment.get(built_in[2]) or None if built_in else None)
    if base_url is None and not built_in:
        raise ConfigError(
            f"{source}: {where}.base_url is missing: set the server's URL, e.g. http://127.0.0.1:11434/v1"
        )
    if base_url is not None:
        from_environment = f" (from {built_in[2]})" if built_in and "base_url" not in table else ""
        _check_url(base_url, f"{source}: {where}.base_url{from_environment}")
    number = (int, float)
    return ProviderSettings(
        name=name,
        wire_api=wire_api,
        api_key=(environment.get(key_env) or None) if key_env else None,
        api_key_env=key_env,
        key_required=value("api_key_required", bool, built_in is not None),
        base_url=base_url,
        models=tuple(str(model) for model in value("models", list, list(built_in[3]) if built_in else [])),
        timeout_seconds=float(value("timeout_seconds", number, 60.0)),
        connect_timeout_seconds=float(value("connect_timeout_seconds", number, 10.0)),
        quirks=_quirks(table, source, where),
        anthropic=AnthropicOptions(
            default_max_tokens=value("max_tokens", int, AnthropicOptions().default_max_tokens),
            extra_body=value("extra_body", dict, {}),
            extra_headers=_string_table(table, "extra_headers", source, where),
        ),
    )


_PROVIDER_KEYS = (
    "api", "api_key_env", "api_key_required", "base_url", "models", "timeout_seconds",
    "connect_timeout_seconds", "preset", "quirks", "max_tokens", "extra_body", "extra_headers",
)  # fmt: skip


def _check_url(url: str, where: str) -> None:
    """Raises ConfigError unless `url` is an http(s) URL with a host. Otherwise the SDK client made
    at start-up (remote.py) stops the server with a traceback, or the first request fails."""
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises for a port that is not a number
    except ValueError as error:
        raise ConfigError(
            f"{where} {url!r} is not a URL ({error}): write e.g. http://127.0.0.1:11434/v1"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{where} {url!r} must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:11434/v1"
        )


def _quirks(table: Mapping[str, Any], source: str, where: str) -> OpenAIQuirks:
    preset = _get(table, "preset", str, source, where, "openai")
    if preset not in PRESETS:
        raise ConfigError(f"{source}: {where}.preset must be one of {', '.join(PRESETS)} (got {preset!r})")
    overrides = _get(table, "quirks", dict, source, where, {})
    known = {quirk.name: quirk for quirk in fields(OpenAIQuirks)}
    for key, value in overrides.items():
        if key not in known or key in ("extra_body", "extra_headers"):
            choices = ", ".join(name for name in known if name not in ("extra_body", "extra_headers"))
            raise ConfigError(f"{source}: {where}.quirks.{key} is not a quirk; known: {choices}")
        expected = type(getattr(OpenAIQuirks(), key))
        if expected is tuple and isinstance(value, list):
            overrides = {**overrides, key: tuple(value)}
        elif not isinstance(value, expected):
            raise ConfigError(f"{source}: {where}.quirks.{key} must be a {expected.__name__}")
    quirks = replace(OpenAIQuirks(), **PRESETS[preset])
    return replace(
        quirks,
        **overrides,
        extra_body=_get(table, "extra_body", dict, source, where, {}),
        extra_headers=_string_table(table, "extra_headers", source, where),
    )


def _aliases(table: Mapping[str, Any], providers: set[str], source: str) -> dict[str, tuple[str, ...]]:
    aliases: dict[str, tuple[str, ...]] = {}
    for alias, target in table.items():
        chain = [target] if isinstance(target, str) else target
        if not isinstance(chain, list) or not chain or not all(isinstance(item, str) for item in chain):
            raise ConfigError(
                f"{source}: aliases.{alias} must be a model id or a non-empty list of model ids"
            )
        for model_id in chain:
            provider, slash, model_name = model_id.partition("/")
            if not slash or not model_name:
                raise ConfigError(
                    f"{source}: aliases.{alias}: {model_id!r} is not of the form provider/model-name"
                )
            if provider not in providers and provider not in RESERVED_PROVIDERS:
                known = ", ".join(sorted(providers | set(RESERVED_PROVIDERS)))
                raise ConfigError(
                    f"{source}: aliases.{alias}: unknown provider {provider!r} (configured: {known})"
                )
        aliases[alias] = tuple(chain)
    return aliases


def _retry(table: Mapping[str, Any], source: str) -> RetryPolicy:
    names = tuple(item.name for item in fields(RetryPolicy))
    _only_keys(table, names, source, "retry.")
    policy = RetryPolicy()
    values = {
        name: _get(
            table,
            name,
            int if name == "max_attempts" else (int, float),
            source,
            "retry",
            getattr(policy, name),
        )
        for name in names
    }
    if values["max_attempts"] < 1:
        raise ConfigError(f"{source}: retry.max_attempts must be at least 1 (got {values['max_attempts']})")
    for name, value in values.items():
        if value < 0:
            raise ConfigError(f"{source}: retry.{name} must not be negative (got {value})")
    return RetryPolicy(**values)


def _string_table(table: Mapping[str, Any], key: str, source: str, where: str) -> dict[str, str]:
    values: dict[str, Any] = _get(table, key, dict, source, where, {})
    for name, value in values.items():
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {where}.{key}.{name} must be a string (got {value!r})")
    return values


def _table(document: Mapping[str, Any], key: str, source: str, prefix: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {prefix}{key} must be a table")
    return value


def _get(table: Mapping[str, Any], key: str, kind: Any, source: str, where: str, default: Any) -> Any:
    value = table.get(key, default)
    wrong_type = value is not None and not isinstance(value, kind)
    if wrong_type or (isinstance(value, bool) and kind in (int, (int, float))):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConfigError(f"{source}: {where}.{key} must be a {names} (got {value!r})")
    return value


def _only_keys(table: Mapping[str, Any], allowed: tuple[str, ...], source: str, prefix: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{source}: unknown key {prefix}{key}; expected one of: {', '.join(allowed)}")

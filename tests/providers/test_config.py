"""The model configuration: environment variables, the TOML file, presets and quirks, aliases, the retry
policy, and error messages that name the wrong key. Pure functions: nothing here touches the network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from toolwire.server.errors import FailedPrecondition
from toolwire.server.models import config
from toolwire.server.models.config import ConfigError, ModelsConfig, ProviderSettings
from toolwire.server.models.registry import ModelRegistry
from toolwire.server.models.remote import RemoteProvider
from toolwire.server.models.resilience import ResilientModel, RetryPolicy

SOURCE = "test.toml"
LOCAL = {"api": "openai", "base_url": "http://127.0.0.1:11434/v1"}
"""A minimal valid compatible provider table."""


def parse(document: dict[str, Any], environment: dict[str, str] | None = None) -> ModelsConfig:
    return config.parse(document, environment or {}, source=SOURCE)


def provider(models_config: ModelsConfig, name: str) -> ProviderSettings:
    by_name = {settings.name: settings for settings in models_config.providers}
    assert name in by_name, f"no provider {name!r}; have {sorted(by_name)}"
    return by_name[name]


def with_local(**table: Any) -> dict[str, Any]:
    """A document with one compatible provider, `local`, with `table`'s keys added."""
    return {"providers": {"local": {**LOCAL, **table}}}


def local_provider(**table: Any) -> ProviderSettings:
    return provider(parse(with_local(**table)), "local")


# --- built-in providers and the environment -------------------------------------------------------


def test_no_file_and_empty_environment_gives_built_in_providers_without_keys():
    models_config = config.load(None, {})
    assert [settings.name for settings in models_config.providers] == ["openai", "anthropic"]
    assert models_config.aliases == {}
    assert models_config.retry == RetryPolicy()
    for name, wire_api in (("openai", "openai"), ("anthropic", "anthropic")):
        settings = provider(models_config, name)
        assert settings.wire_api == wire_api
        assert settings.api_key is None
        assert settings.key_required is True
        assert settings.base_url is None
        assert settings.models, "built-in providers list their well-known models"


@pytest.mark.parametrize(
    ("name", "variable"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")]
)
def test_built_in_provider_without_key_is_unusable_and_says_which_variable(name, variable):
    remote = RemoteProvider(provider(config.load(None, {}), name))
    assert remote.usable is False
    assert remote.list_models() == []
    with pytest.raises(FailedPrecondition) as caught:
        remote.resolve("some-model")
    assert variable in caught.value.message


def test_list_models_without_keys_lists_no_built_in_models():
    registry = ModelRegistry([RemoteProvider(settings) for settings in config.load(None, {}).providers])
    assert registry.list_models() == []


def test_keys_and_base_urls_come_from_the_environment():
    environment = {
        "OPENAI_API_KEY": "sk-openai-from-env",
        "OPENAI_BASE_URL": "http://127.0.0.1:9001/v1",
        "ANTHROPIC_API_KEY": "sk-ant-from-env",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9002",
    }
    models_config = parse({}, environment)
    openai_settings, anthropic_settings = (
        provider(models_config, "openai"),
        provider(models_config, "anthropic"),
    )
    assert openai_settings.api_key == "sk-openai-from-env"
    assert openai_settings.base_url == "http://127.0.0.1:9001/v1"
    assert anthropic_settings.api_key == "sk-ant-from-env"
    assert anthropic_settings.base_url == "http://127.0.0.1:9002"
    registry = ModelRegistry([RemoteProvider(settings) for settings in models_config.providers])
    listed = {model.model_id: model.provider for model in registry.list_models()}
    assert listed["openai/gpt-4.1"] == "openai"
    assert listed["anthropic/claude-sonnet-4-5"] == "anthropic"


def test_base_url_in_the_file_wins_over_the_environment():
    environment = {"OPENAI_BASE_URL": "http://127.0.0.1:9001/v1"}
    document = {"providers": {"openai": {"base_url": "http://127.0.0.1:9999/v1"}}}
    assert provider(parse(document, environment), "openai").base_url == "http://127.0.0.1:9999/v1"


def test_api_key_env_renames_the_key_variable_of_a_built_in_provider():
    document = {"providers": {"openai": {"api_key_env": "TEAM_OPENAI_KEY"}}}
    settings = provider(
        parse(document, {"TEAM_OPENAI_KEY": "sk-team", "OPENAI_API_KEY": "sk-default"}), "openai"
    )
    assert settings.api_key == "sk-team"
    assert settings.api_key_env == "TEAM_OPENAI_KEY"


# --- compatible providers, presets and quirks -----------------------------------------------------


def test_compatible_provider_with_a_preset():
    settings = local_provider(preset="ollama", models=["qwen3:8b", "llama3.2"])
    assert settings.wire_api == "openai"
    assert settings.base_url == "http://127.0.0.1:11434/v1"
    assert settings.models == ("qwen3:8b", "llama3.2")
    assert settings.quirks.max_tokens_field == "max_tokens"
    assert settings.quirks.parallel_tool_calls is False
    assert settings.quirks.include_usage is True
    assert settings.key_required is False
    remote = RemoteProvider(settings)
    assert remote.usable is True
    assert [model.model_id for model in remote.list_models()] == ["local/qwen3:8b", "local/llama3.2"]


def test_quirks_override_the_preset():
    settings = local_provider(
        preset="ollama", quirks={"include_usage": False, "reasoning_fields": ["thinking"]}
    )
    assert settings.quirks.include_usage is False
    assert settings.quirks.reasoning_fields == ("thinking",)
    assert settings.quirks.max_tokens_field == "max_tokens"  # still the preset's


def test_every_preset_names_only_real_quirks():
    for name in config.PRESETS:
        settings = local_provider(preset=name)
        for quirk, value in config.PRESETS[name].items():
            assert getattr(settings.quirks, quirk) == value, (name, quirk)


def test_extra_body_and_headers_reach_both_adapters():
    settings = local_provider(extra_body={"top_k": 20}, extra_headers={"X-Route": "blue"}, max_tokens=8192)
    assert settings.quirks.extra_body == {"top_k": 20}
    assert settings.quirks.extra_headers == {"X-Route": "blue"}
    assert settings.anthropic.extra_body == {"top_k": 20}
    assert settings.anthropic.default_max_tokens == 8192


def test_timeouts_accept_integers_and_floats():
    settings = local_provider(timeout_seconds=90, connect_timeout_seconds=2.5)
    assert settings.timeout_seconds == 90.0
    assert settings.connect_timeout_seconds == 2.5


def test_compatible_provider_with_an_unset_required_key_is_unusable():
    settings = local_provider(api_key_env="LOCAL_GATEWAY_KEY", api_key_required=True)
    assert settings.key_required is True
    assert settings.api_key is None
    remote = RemoteProvider(settings)
    assert remote.usable is False
    with pytest.raises(FailedPrecondition) as caught:
        remote.resolve("some-model")
    assert "LOCAL_GATEWAY_KEY" in caught.value.message


def test_compatible_provider_reads_its_key_variable_when_set():
    document = with_local(api_key_env="LOCAL_KEY", api_key_required=True)
    settings = provider(parse(document, {"LOCAL_KEY": "local-secret"}), "local")
    assert settings.api_key == "local-secret"
    assert RemoteProvider(settings).usable is True


def test_an_anthropic_compatible_provider():
    settings = local_provider(api="anthropic", api_key_env="PROXY_KEY")
    assert settings.wire_api == "anthropic"
    assert settings.key_required is False


# --- aliases --------------------------------------------------------------------------------------


def test_aliases_as_a_string_and_as_a_fallback_chain():
    aliases = {"smart": "openai/gpt-4.1", "fast": ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"]}
    assert parse({"aliases": aliases}).aliases == {
        "smart": ("openai/gpt-4.1",),
        "fast": ("anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"),
    }


def test_alias_to_the_scripted_provider_is_allowed():
    assert parse({"aliases": {"demo": "scripted/weather"}}).aliases == {"demo": ("scripted/weather",)}


async def test_registry_resolves_an_alias_to_its_chain():
    environment = {"OPENAI_API_KEY": "sk-openai", "ANTHROPIC_API_KEY": "sk-ant"}
    aliases = {"fast": ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"], "smart": "openai/gpt-4.1"}
    models_config = parse({"aliases": aliases}, environment)
    remotes = [RemoteProvider(settings) for settings in models_config.providers]
    registry = ModelRegistry(remotes, aliases=models_config.aliases, retry=models_config.retry)
    try:
        fast = registry.resolve("fast")
        assert isinstance(fast, ResilientModel)
        assert fast.model_id == "fast"
        assert [model.model_id for model in fast.chain] == [
            "anthropic/claude-haiku-4-5",
            "openai/gpt-4o-mini",
        ]
        smart = registry.resolve("smart")
        assert isinstance(smart, ResilientModel)
        assert smart.model_id == "smart"
        assert [model.model_id for model in smart.chain] == ["openai/gpt-4.1"]
        listed = {model.model_id: model for model in registry.list_models()}
        assert listed["fast"].provider == "alias"
        assert "anthropic/claude-haiku-4-5" in listed["fast"].description
        assert listed["smart"].provider == "alias"
    finally:
        for remote in remotes:
            await remote.close()


def test_aliases_are_listed_even_when_their_providers_have_no_key():
    models_config = parse({"aliases": {"smart": "openai/gpt-4.1"}})
    remotes = [RemoteProvider(settings) for settings in models_config.providers]
    registry = ModelRegistry(remotes, aliases=models_config.aliases)
    assert [(model.model_id, model.provider) for model in registry.list_models()] == [("smart", "alias")]


# --- retry ----------------------------------------------------------------------------------------


def test_retry_table_parses_into_a_retry_policy():
    retry = {
        "max_attempts": 5,
        "initial_backoff_seconds": 0.25,
        "max_backoff_seconds": 4,
        "max_retry_after_seconds": 10,
    }
    assert parse({"retry": retry}).retry == RetryPolicy(
        max_attempts=5, initial_backoff_seconds=0.25, max_backoff_seconds=4.0, max_retry_after_seconds=10.0
    )


def test_partial_retry_table_keeps_the_other_defaults():
    policy = parse({"retry": {"max_attempts": 1}}).retry
    assert policy == RetryPolicy(max_attempts=1)
    assert isinstance(policy.max_attempts, int)


# --- files ----------------------------------------------------------------------------------------


def test_load_reads_a_toml_file(tmp_path: Path):
    path = tmp_path / "models.toml"
    path.write_text(
        """
[providers.local]
api = "openai"
base_url = "http://127.0.0.1:8000/v1"
preset = "vllm"
models = ["qwen"]
quirks = { include_usage = false }

[aliases]
default = ["local/qwen", "openai/gpt-4.1-mini"]

[retry]
max_attempts = 2
""",
        encoding="utf-8",
    )
    models_config = config.load(path, {"OPENAI_API_KEY": "sk-openai"})
    local = provider(models_config, "local")
    assert local.models == ("qwen",)
    assert local.quirks.include_usage is False
    assert local.quirks.max_tokens_field == "max_tokens"
    assert models_config.aliases == {"default": ("local/qwen", "openai/gpt-4.1-mini")}
    assert models_config.retry.max_attempts == 2
    assert provider(models_config, "openai").api_key == "sk-openai"


def test_invalid_toml_names_the_file(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text("[providers.local\napi = 'openai'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load(path, {})
    assert str(path) in str(caught.value)
    assert "TOML" in str(caught.value)


def test_missing_file_names_the_file(tmp_path: Path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        config.load(path, {})
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[aliases]\nd\xe9faut = "openai/gpt-4.1"\n'.encode("latin-1"))
    with pytest.raises((ConfigError, UnicodeDecodeError)) as caught:
        config.load(path, {})
    assert isinstance(caught.value, ConfigError), (
        f"BUG: config.load lets {type(caught.value).__name__} escape for a non-UTF-8 file instead of a "
        f"ConfigError naming {path} (the CLI only reports ConfigError cleanly): {caught.value}"
    )
    assert str(path) in str(caught.value)


def test_extra_headers_values_must_be_strings():
    document = with_local(extra_headers={"X-Retries": 1})
    try:
        parse(document)
    except ConfigError as error:
        message = str(error)
    else:
        message = ""
    assert "providers.local.extra_headers" in message, (
        "BUG: config.parse accepts a non-string header value; every request of that provider then "
        "fails with a bare TypeError ('Header value must be str or bytes') from the HTTP client"
    )


# --- errors name the key and what to do -----------------------------------------------------------

CONFIG_ERRORS = [
    ({"provider": {}}, ["unknown key provider;", "providers, aliases, retry"]),
    ({"providers": []}, ["providers", "table"]),
    ({"providers": {"local": "x"}}, ["providers.local", "table"]),
    (with_local(modles=[]), ["providers.local.modles", "models"]),
    (with_local(models="x"), ["providers.local.models", "list"]),
    (with_local(timeout_seconds="fast"), ["providers.local.timeout_seconds", "float"]),
    (with_local(timeout_seconds=True), ["providers.local.timeout_seconds", "float"]),
    (with_local(connect_timeout_seconds=False), ["providers.local.connect_timeout_seconds", "float"]),
    ({"providers": {"anthropic": {"max_tokens": True}}}, ["providers.anthropic.max_tokens", "int"]),
    (with_local(api_key_required="yes"), ["providers.local.api_key_required", "bool"]),
    (with_local(extra_headers="X-A: b"), ["providers.local.extra_headers", "dict"]),
    (with_local(preset="olama"), ["providers.local.preset", "ollama"]),
    (with_local(quirks={"stream_usage": False}), ["providers.local.quirks.stream_usage", "include_usage"]),
    (with_local(quirks={"extra_body": {}}), ["providers.local.quirks.extra_body", "include_usage"]),
    (with_local(quirks={"include_usage": "no"}), ["providers.local.quirks.include_usage", "bool"]),
    (with_local(quirks={"max_tokens_field": 1}), ["providers.local.quirks.max_tokens_field", "str"]),
    ({"providers": {"local": {"api": "openai"}}}, ["providers.local.base_url", "http://"]),
    (
        with_local(base_url="http://[::1"),
        ["providers.local.base_url 'http://[::1' is not a URL", "e.g. http://"],
    ),
    (
        with_local(base_url="127.0.0.1:11434/v1"),
        ["providers.local.base_url", "must be an http:// or https:// URL"],
    ),
    (
        with_local(base_url="ftp://models.local/v1"),
        ["providers.local.base_url", "must be an http:// or https:// URL"],
    ),
    (with_local(base_url="http:///v1"), ["providers.local.base_url", "with a host"]),
    (with_local(base_url="http://127.0.0.1:port/v1"), ["providers.local.base_url", "is not a URL"]),
    (with_local(api="gemini"), ["providers.local.api", "openai, anthropic"]),
    ({"providers": {"local": {"base_url": LOCAL["base_url"]}}}, ["providers.local.api", "openai, anthropic"]),
    ({"providers": {"scripted": LOCAL}}, ["providers.scripted", "reserved"]),
    ({"aliases": {"fast": "gpt-4.1"}}, ["aliases.fast", "provider/model-name"]),
    ({"aliases": {"fast": "openai/"}}, ["aliases.fast", "provider/model-name"]),
    ({"aliases": {"fast": ["openai/gpt-4.1", "nowhere/x"]}}, ["aliases.fast", "'nowhere'", "openai"]),
    ({"aliases": {"fast": []}}, ["aliases.fast", "non-empty list"]),
    ({"aliases": {"fast": 3}}, ["aliases.fast", "model id"]),
    ({"aliases": []}, ["aliases", "table"]),
    ({"retry": {"attempts": 3}}, ["retry.attempts", "max_attempts"]),
    ({"retry": {"max_attempts": "3"}}, ["retry.max_attempts", "int"]),
    ({"retry": {"max_attempts": True}}, ["retry.max_attempts", "int"]),
    ({"retry": {"max_attempts": 0}}, ["retry.max_attempts", "at least 1"]),
    ({"retry": {"initial_backoff_seconds": -1}}, ["retry.initial_backoff_seconds", "negative"]),
]
"""(document, fragments its error message must contain): the key, then what to do or what is allowed."""


ERROR_IDS = [f"{index:02d}-{fragments[0]}" for index, (_document, fragments) in enumerate(CONFIG_ERRORS)]


@pytest.mark.parametrize(("document", "fragments"), CONFIG_ERRORS, ids=ERROR_IDS)
def test_config_errors_name_the_source_the_key_and_the_fix(document, fragments):
    with pytest.raises(ConfigError) as caught:
        parse(document)
    message = str(caught.value)
    assert message.startswith(SOURCE + ":"), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} is not in the error message: {message}"


def test_a_base_url_from_the_environment_that_is_not_a_url_names_the_variable():
    with pytest.raises(ConfigError) as caught:
        parse({}, {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "api.example.com/v1"})
    assert str(caught.value).startswith(
        f"{SOURCE}: providers.openai.base_url (from OPENAI_BASE_URL) 'api.example.com/v1' must be an http://"
    )

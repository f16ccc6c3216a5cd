"""Settings from the config file's [server] table, the environment and flags, in that order; the
errors say where the bad value came from and what to write; `toolwire check-config`."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolwire.server import options
from toolwire.server.cli import main
from toolwire.server.models.config import ConfigError
from toolwire.server.options import SettingsError
from toolwire.server.settings import ServerSettings
from toolwire.server.setup import check_config, settings_from

DOCS = Path(__file__).parent.parent.parent / "docs" / "configuration.md"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "toolwire.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_environment_or_flags():
    settings = settings_from(None, {}, {})
    assert settings == ServerSettings()
    assert settings.listen == ("127.0.0.1:50051",) and settings.auth_token is None


def test_the_environment_overrides_the_file_and_flags_override_both(tmp_path):
    path = write_config(
        tmp_path,
        '[server]\nmax_concurrent_chats = 5\nchat_deadline_seconds = 30\nlog_format = "json"\n'
        'listen = ["unix:/tmp/a.sock", "127.0.0.1:7000"]\n',
    )
    environment = {"TOOLWIRE_MAX_CONCURRENT_CHATS": "7", "TOOLWIRE_CHAT_DEADLINE_SECONDS": "12.5"}
    settings = settings_from(path, environment, {"max_concurrent_chats": 9})
    assert settings.max_concurrent_chats == 9  # flag
    assert settings.chat_deadline_seconds == 12.5  # environment
    assert settings.log_format == "json"  # file
    assert settings.listen == ("unix:/tmp/a.sock", "127.0.0.1:7000")
    assert settings.config_path == path


def test_listen_from_the_environment_is_a_comma_separated_list():
    settings = settings_from(None, {"TOOLWIRE_LISTEN": "127.0.0.1:1, unix:/tmp/t.sock"}, {})
    assert settings.listen == ("127.0.0.1:1", "unix:/tmp/t.sock")


def test_health_listen_is_empty_by_default_and_a_list_like_listen(tmp_path):
    assert settings_from(None, {}, {}).health_listen == ()
    environment = {"TOOLWIRE_HEALTH_LISTEN": "0.0.0.0:8086, [::]:8087"}
    assert settings_from(None, environment, {}).health_listen == ("0.0.0.0:8086", "[::]:8087")
    path = write_config(tmp_path, '[server]\nhealth_listen = "127.0.0.1:0"\nlisten = "127.0.0.1:0"\n')
    assert settings_from(path, {}, {}).health_listen == ("127.0.0.1:0",)  # two port 0s: two ports
    flags = {"health_listen": ["127.0.0.1:9"]}
    assert settings_from(path, environment, flags).health_listen == ("127.0.0.1:9",)


def test_paths_in_the_file_are_relative_to_its_folder(tmp_path):
    path = write_config(
        tmp_path, '[server]\ntls_cert_file = "c.pem"\ntls_key_file = "k.pem"\nscripts = "s"\n'
    )
    settings = settings_from(path, {}, {})
    assert settings.tls is not None and settings.tls.cert_file == tmp_path / "c.pem"
    assert settings.script_dirs == (tmp_path / "s",)


def test_the_token_comes_from_the_named_variable_and_never_shows_in_repr(tmp_path):
    path = write_config(tmp_path, '[server]\nauth_token_env = "MY_TOKEN"\n')
    settings = settings_from(path, {"MY_TOKEN": "s3cret-token", "TOOLWIRE_AUTH_TOKEN": "other"}, {})
    assert settings.auth_token == "s3cret-token"
    assert "s3cret-token" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "environment", "message"),
    [
        ("[server]\nmax_concurrent_chats = 0\n", {}, "server.max_concurrent_chats must be at least 1 (got 0)"),  # noqa: E501
        ("[server]\nmax_concurrent_chats = '5'\n", {}, "server.max_concurrent_chats must be a whole number"),
        ("[server]\nreflection = 1\n", {}, "server.reflection must be true or false (got 1)"),
        ("[server]\nlisten = 'localhost'\n", {}, "server.listen 'localhost' is not an address"),
        ("[server]\nlisten = 5\n", {}, "server.listen must be a string or a list of strings"),
        ("[server]\nlisten = ':50051'\n", {}, "server.listen ':50051' has no host: write 127.0.0.1:50051 (this machine only), 0.0.0.0:50051"),  # noqa: E501
        ("[server]\nhealth_listen = 'unix:/tmp/h.sock'\n", {}, "server.health_listen takes host:port, e.g. 0.0.0.0:8086 (got 'unix:/tmp/h.sock'): a probe that can reach a Unix socket"),  # noqa: E501
        ("[server]\nhealth_listen = ['0.0.0.0:8086', 'nowhere']\n", {}, "server.health_listen 'nowhere' is not an address"),  # noqa: E501
        ("", {"TOOLWIRE_LISTEN": "127.0.0.1:7000", "TOOLWIRE_HEALTH_LISTEN": "127.0.0.1:7000"}, "health_listen 127.0.0.1:7000 is also a listen address, which serves health checks already"),  # noqa: E501
        ("[server]\nlog_format = 'xml'\n", {}, "server.log_format must be one of text, json (got 'xml')"),
        ("[server]\nlisten_on = '1'\n", {}, "unknown key server.listen_on; expected one of: listen,"),
        ("[server]\nshutdown_grace_seconds = -1\n", {}, "server.shutdown_grace_seconds must be at least 0"),
        ("[server]\nauth_token_env = 'A-B'\n", {}, "server.auth_token_env must be an environment variable name"),  # noqa: E501
        ("[server]\ntls_cert_file = 'c.pem'\n", {}, "TLS needs both tls_cert_file and tls_key_file: set tls_key_file"),  # noqa: E501
        ("[server]\ntls_client_ca_file = 'ca.pem'\n", {}, "tls_client_ca_file needs tls_cert_file and tls_key_file"),  # noqa: E501
        ("", {"TOOLWIRE_MAX_CONCURRENT_CHATS": "many"}, "environment variable TOOLWIRE_MAX_CONCURRENT_CHATS must be a whole number (got 'many')"),  # noqa: E501
        ("", {"TOOLWIRE_REFLECTION": "maybe"}, "environment variable TOOLWIRE_REFLECTION must be true or false"),  # noqa: E501
        ("", {"TOOLWIRE_AUTH_TOKEN": " "}, "TOOLWIRE_AUTH_TOKEN is set but empty"),
        ("", {"TOOLWIRE_LOG_LEVEL": "loud"}, "TOOLWIRE_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR"),
    ],
)  # fmt: skip
def test_a_bad_value_names_where_it_came_from_and_what_to_write(tmp_path, text, environment, message):
    path = write_config(tmp_path, text)
    with pytest.raises(SettingsError) as raised:
        settings_from(path, environment, {})
    assert message in str(raised.value)
    if text:
        assert str(path) in str(raised.value) or "environment" in str(raised.value) or "tls" in message


def test_a_bad_toml_file_names_the_file(tmp_path):
    path = write_config(tmp_path, "[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        settings_from(path, {}, {})


def test_the_environment_level_is_case_insensitive():
    assert settings_from(None, {"TOOLWIRE_LOG_LEVEL": "debug"}, {}).log_level == "DEBUG"


def test_flags_are_parsed_and_checked_like_the_environment(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["serve", "--max-concurrent-chats", "lots"])
    assert raised.value.code == 2
    assert "must be a whole number (got 'lots')" in capsys.readouterr().err
    assert main(["serve", "--max-concurrent-chats", "0"]) == 2
    assert "--max-concurrent-chats must be at least 1 (got 0)" in capsys.readouterr().err


def test_check_config_summarises_a_valid_file(tmp_path):
    path = write_config(
        tmp_path,
        '[providers.local]\napi = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n'
        '[aliases]\nfast = "local/qwen"\n'
        '[server]\nlisten = "unix:/run/toolwire/toolwire.sock"\nreflection = false\n'
        'health_listen = "0.0.0.0:8086"\n',
    )
    exit_code, text = check_config(path)
    assert exit_code == 0, text
    assert f"{path}: valid" in text
    assert "local (openai, http://127.0.0.1:1/v1)" in text
    assert "fast → local/qwen" in text
    assert "listen unix:/run/toolwire/toolwire.sock; tls off; reflection off" in text
    assert "health checks alone on 0.0.0.0:8086" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nmax_concurrent_chats = 'x'\n", "server.max_concurrent_chats must be a whole number"),
        ("[providers.local]\napi = 'openai'\n", "providers.local.base_url is missing"),
        ("[serve]\nlisten = '127.0.0.1:1'\n", "unknown key serve; expected one of: providers, aliases, retry, server"),  # noqa: E501
        ("[server]\nscripts = 'missing-folder'\n", "missing-folder"),
    ],
)  # fmt: skip
def test_check_config_says_what_is_wrong_and_where(tmp_path, capsys, text, message):
    path = write_config(tmp_path, text)
    assert main(["check-config", str(path)]) == 2
    error = capsys.readouterr().err
    assert message in error and str(path) in error


def test_every_option_is_in_the_configuration_table():
    text = DOCS.read_text()
    for option in options.OPTIONS:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{option.key}`")), None)
        assert row is not None, f"docs/configuration.md has no row for {option.key}"
        for name in (option.env, *option.flags):
            if name:
                assert f"`{name}`" in row, f"the row of {option.key} does not name {name}"

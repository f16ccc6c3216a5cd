"""Makes sure a Go new enough for this repository's go.mod files is on PATH, installing one if not.

    python3 tools/install_go.py DEST    # nothing to do if `go` is new enough; else Go into DEST

The Makefile runs it before anything that needs Go, with DEST = tools/go-toolchain, whose bin/ it
puts first on PATH. Debian's golang-go cannot stand in: bookworm's is Go 1.19, and the go.mod files
need 1.26. The toolchain comes from the Go module proxy (`$GOPROXY`, default proxy.golang.org), the
way the go command fetches toolchains itself (the module golang.org/toolchain), and is checked against
the hash pinned here before anything is unpacked, as go.sum pins a module. The hashes were taken with
`go mod download -json golang.org/toolchain@VERSION.linux-ARCH`, which checks them with sum.golang.org.
Standard library only: it runs before the virtualenv exists.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GO_VERSION = "1.26.8"
"""The Go installed when the machine has none new enough (the newest 1.26 release when pinned)."""
MODULE_VERSION = f"v0.0.1-go{GO_VERSION}"
SUMS = {
    "linux-amd64": "h1:ZOmGe1OnfREDMIdb1Qi4G9JSuDPBLGExZMQ4nis1RXM=",
    "linux-arm64": "h1:sYL/O6MqS68ML0kjsQ36WoYIpJqkw60TxizWUYUKQMc=",
}
"""The go.sum-style hash (h1, the Go module dirhash) of each toolchain zip."""
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


GO_MODULES = ("tools", "clients/go", "examples/go/weather", "bench/loadgen")
"""The repository's Go modules (a test checks this against the go.mod files git has)."""


def needed_version() -> tuple[int, ...]:
    """The highest `go` directive of the repository's go.mod files."""
    versions = [
        parse_version(match[1])
        for module in GO_MODULES
        if (match := re.search(r"^go (\S+)\s*$", (ROOT / module / "go.mod").read_text(), re.MULTILINE))
    ]
    return max(versions, default=(1, 21))


def parse_version(text: str) -> tuple[int, ...]:
    """`1.26.0`, `go1.26.8` or `go1.26rc1` as a comparable tuple (a pre-release counts as its minor)."""
    match = re.match(r"(?:go)?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        raise ValueError(f"not a Go version: {text!r}")
    return tuple(int(part) for part in match.groups(default="0"))


def installed_version() -> tuple[int, ...] | None:
    """The version of the `go` on PATH, or None when there is none."""
    go = shutil.which("go")
    if go is None:
        return None
    result = subprocess.run(
        [go, "env", "GOVERSION"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    )
    try:
        return parse_version(result.stdout.strip())
    except ValueError:
        return None


def dirhash(archive: zipfile.ZipFile) -> str:
    """The Go module hash `h1:` of a module zip (golang.org/x/mod/sumdb/dirhash.Hash1)."""
    summary = hashlib.sha256()
    for name in sorted(info.filename for info in archive.infolist()):
        if "\n" in name:
            raise ValueError(f"a file name with a newline in the toolchain zip: {name!r}")
        summary.update(f"{hashlib.sha256(archive.read(name)).hexdigest()}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def unpack(archive: zipfile.ZipFile, prefix: str, destination: Path) -> None:
    """Unpacks the files under `prefix` into `destination`, keeping their modes (bin/go is executable)."""
    for info in archive.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        relative = Path(info.filename[len(prefix) :])
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"a path outside the toolchain in its zip: {info.filename!r}")
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(info))
        mode = (info.external_attr >> 16) & 0o777
        target.chmod(mode or 0o644)


def proxy_url() -> str:
    """The first module proxy of $GOPROXY that is a URL (the go command's default otherwise)."""
    for entry in re.split(r"[,|]", os.environ.get("GOPROXY", "")):
        if entry.startswith(("https://", "http://")):
            return entry.rstrip("/")
    return "https://proxy.golang.org"


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=300) as response:
        return bytes(response.read())


def install(destination: Path, platform_name: str, fetch: Callable[[str], bytes] = _fetch) -> Path:
    """Puts the pinned toolchain for `platform_name` (e.g. linux-amd64) into `destination`; returns
    its bin folder. Refuses, installing nothing, when the zip's hash is not the pinned one."""
    expected = SUMS.get(platform_name)
    if expected is None:
        raise SystemExit(f"install_go: no pinned Go toolchain for {platform_name}; install Go {GO_VERSION}+")
    module = f"{MODULE_VERSION}.{platform_name}"
    url = f"{proxy_url()}/golang.org/toolchain/@v/{module}.zip"
    print(f"install_go: fetching Go {GO_VERSION} ({platform_name}) from {url}", file=sys.stderr, flush=True)
    try:
        archive = zipfile.ZipFile(io.BytesIO(fetch(url)))
    except (OSError, zipfile.BadZipFile) as error:  # URLError is an OSError
        raise SystemExit(
            f"install_go: could not fetch {url}: {error}; set GOPROXY to a module proxy this machine "
            f"reaches, or install Go {GO_VERSION} or later yourself"
        ) from None
    actual = dirhash(archive)
    if actual != expected:
        raise SystemExit(f"install_go: {url} has hash {actual}, not the pinned {expected}: not installed")
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    unpack(archive, f"golang.org/toolchain@{module}/", staging)
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    return destination / "bin"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    destination = Path(argv[0]).resolve()
    needed = needed_version()
    installed = installed_version()
    if installed is not None and installed >= needed:
        return 0
    found = "no go" if installed is None else "go " + ".".join(map(str, installed))
    print(f"install_go: {found} on PATH; the go.mod files need {'.'.join(map(str, needed))}", file=sys.stderr)
    if parse_version(GO_VERSION) < needed:
        raise SystemExit(f"install_go: the pinned Go {GO_VERSION} is older than the go.mod files need")
    machine = ARCHES.get(platform.machine().lower(), platform.machine().lower())
    install(destination, f"{platform.system().lower()}-{machine}")
    print(f"install_go: Go {GO_VERSION} is in {destination} (the Makefile puts its bin first on PATH)",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

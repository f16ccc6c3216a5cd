"""Build the toolwire container image with podman on a machine with no registry and no Docker engine.

    python tools/container.py base      # make localhost/toolwire-base:bookworm once (debootstrap)
    python tools/container.py image     # the base if missing, then the image (Dockerfile at the top)

What works here (shared/recipes/container-build.md): podman from Debian with the vfs storage driver
and chroot isolation, a base image made with debootstrap and imported (no registry is reachable), and
the machine's CA bundle handed to pip (and Go) in the build as a build secret. The base is kept in
podman's vfs storage and made again only when it is missing or its recipe (below) changed, so repeated
builds do not redo debootstrap. The Dockerfile's probe stage (grpc-health-probe) is built on the same
base with this machine's Go mounted where the golang image has its own. Elsewhere the Dockerfile builds
as it is, on its default python:3.11-slim and golang bases.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/toolwire:latest"
BASE = "localhost/toolwire-base:bookworm"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# The Debian equivalent of python:3.11-slim-bookworm: bookworm's python3 is 3.11; python3-venv
# brings ensurepip (pip for the build stage); ca-certificates for the providers' HTTPS.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_RECIPE_LABEL = "io.toolwire.base-recipe"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def podman(
    *arguments: str, capture: bool = False, stdin: int | None = None, log: IO[str] | None = None
) -> str:
    """Runs podman with the vfs storage driver (the one that works here); returns stdout if captured,
    else writes stdout and stderr to `log` if given."""
    command = ["podman", "--storage-driver", "vfs", *arguments]
    result = subprocess.run(
        command,
        check=True,
        text=True,
        stdin=stdin,
        stdout=subprocess.PIPE if capture else log,
        stderr=subprocess.STDOUT if log is not None and not capture else None,
    )
    return result.stdout.strip() if capture else ""


def image_exists(tag: str) -> bool:
    return (
        subprocess.run(["podman", "--storage-driver", "vfs", "image", "exists", tag], check=False).returncode
        == 0
    )


def base_recipe() -> str:
    """A short hash of what the base is made of; a change makes `ensure_base` make it again."""
    recipe = json.dumps([SUITE, MIRROR, "minbase", *BASE_PACKAGES, "slimmed-1"])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def base_is_current(tag: str) -> bool:
    if not image_exists(tag):
        return False
    labels = podman("image", "inspect", "--format", "{{json .Labels}}", tag, capture=True)
    return bool((json.loads(labels) or {}).get(BASE_RECIPE_LABEL) == base_recipe())


def make_base(tag: str) -> float:
    """debootstrap bookworm (minbase + Python) into a folder, slim it, import it as `tag`; returns seconds."""
    for tool in ("debootstrap", "podman"):
        if shutil.which(tool) is None:
            raise SystemExit(f"container: {tool} is missing (apt-get install -y podman debootstrap)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="toolwire-base-") as folder:
        rootfs = Path(folder) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(["chroot", str(rootfs), "apt-get", "clean"], check=True)
        _slim(rootfs)
        with subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        ) as tar:
            podman(
                "import",
                "--change", f"LABEL {BASE_RECIPE_LABEL}={base_recipe()}",
                "--change", "ENV LANG=C.UTF-8",
                "--change", 'CMD ["python3"]',
                "--quiet", "-", tag,
                stdin=tar.stdout.fileno() if tar.stdout else None,
                capture=True,
            )  # fmt: skip
        if tar.returncode != 0:
            raise SystemExit(f"container: tar of the base failed ({tar.returncode})")
    return time.monotonic() - started


def _slim(rootfs: Path) -> None:
    """Drops what a runtime never reads: package lists and caches, docs (not copyright files), man pages."""
    for pattern in (
        "var/lib/apt/lists/*",
        "var/cache/apt/*",
        "var/cache/debconf/*-old",
        "var/log/*",
        "usr/share/man/*",
    ):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for path in (rootfs / "usr/share/doc").glob("*/*"):
        if path.name != "copyright":
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def ensure_base(tag: str = BASE) -> float | None:
    """Makes the base unless an image of the current recipe is there; returns seconds spent, or None."""
    if base_is_current(tag):
        return None
    print(f"container: making the base image {tag} with debootstrap", flush=True)
    return make_base(tag)


def revision() -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def go_root() -> str:
    """This machine's Go installation (GOROOT), for the Dockerfile's probe stage."""
    if shutil.which("go") is None:
        raise SystemExit("container: go is missing (`make setup` installs it)")
    return subprocess.run(["go", "env", "GOROOT"], capture_output=True, text=True, check=True).stdout.strip()


def build(
    tag: str = IMAGE,
    base: str = BASE,
    ca_bundle: Path | None = HOST_CA_BUNDLE,
    cache: bool = True,
    layers: bool = False,
    log: IO[str] | None = None,
) -> float:
    """Builds the Dockerfile at the top of the repository on `base` (both stages: Python, and Go with
    this machine's Go mounted); returns seconds.

    Without `layers` each stage is committed once: vfs stores every layer as a full copy of the
    filesystem, so one commit per instruction made a build 4 to 6 times slower here (230-370 s
    against about 60 s), more than a layer cache ever saved. The image replaced under `tag` is removed.
    """
    previous = (
        podman("image", "inspect", "--format", "{{.Id}}", tag, capture=True) if image_exists(tag) else ""
    )
    arguments = [
        "build",
        "--isolation", "chroot",
        "--network", "host",
        # Docker format: OCI image configs have no HEALTHCHECK, and podman drops it from them.
        "--format", "docker",
        "--build-arg", f"BASE_IMAGE={base}",
        # The probe stage on the same base, with this machine's Go (the one `make setup` uses) mounted
        # where the golang image keeps its own: no Go image is reachable here either.
        "--build-arg", f"GO_IMAGE={base}",
        "--volume", f"{go_root()}:/usr/local/go:ro",
        "--build-arg", f"REVISION={revision()}",
        "--tag", tag,
        "--file", str(ROOT / "Dockerfile"),
    ]  # fmt: skip
    if ca_bundle is not None and ca_bundle.is_file():
        # A build secret: mounted for the pip step only, never stored in a layer.
        arguments += ["--secret", f"id=ca_bundle,src={ca_bundle}"]
    if not cache:
        arguments.append("--no-cache")
    arguments.append(f"--layers={str(layers).lower()}")
    started = time.monotonic()
    podman(*arguments, str(ROOT), log=log)
    seconds = time.monotonic() - started
    if previous and previous != podman("image", "inspect", "--format", "{{.Id}}", tag, capture=True):
        # Untagged now; vfs images take real disk. Kept if a container still uses it.
        subprocess.run(
            ["podman", "--storage-driver", "vfs", "rmi", previous], capture_output=True, check=False
        )
    return seconds


def image_size(tag: str = IMAGE) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag, capture=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/container.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    base_parser = commands.add_parser(
        "base", help="make the local bookworm+python3 base image unless it is there"
    )
    base_parser.add_argument("--tag", default=BASE)
    base_parser.add_argument("--force", action="store_true", help="make it again even if it is there")
    image_parser = commands.add_parser("image", help="build the toolwire image on the local base")
    image_parser.add_argument("--tag", default=IMAGE)
    image_parser.add_argument("--base", default=BASE)
    image_parser.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    image_parser.add_argument("--layers", action="store_true", help="commit every instruction (slow on vfs)")
    arguments = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("container: debootstrap and podman's vfs storage here need root", file=sys.stderr)
        return 1
    if arguments.command == "base":
        seconds = make_base(arguments.tag) if arguments.force else ensure_base(arguments.tag)
        print(
            f"container: base {arguments.tag} "
            + ("was there" if seconds is None else f"made in {seconds:.1f} s")
        )
        return 0
    base_seconds = ensure_base(arguments.base)
    if base_seconds is not None:
        print(f"container: base {arguments.base} made in {base_seconds:.1f} s")
    seconds = build(arguments.tag, arguments.base, cache=not arguments.no_cache, layers=arguments.layers)
    size = image_size(arguments.tag)
    print(
        f"container: built {arguments.tag} in {seconds:.1f} s; image size {size / 1e6:.1f} MB ({size} bytes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The container image, built for real and started from what it holds.

podman (vfs storage, chroot isolation) builds the Dockerfile on a bookworm base made with debootstrap
(tools/container.py; no registry is reachable here). `podman run` does not work on this machine, so
the image's filesystem is exported and its ENTRYPOINT+CMD started with chroot, as the image's USER and
with the image's environment, listening on a free loopback port instead of 0.0.0.0:50051. Then: the
image's own HEALTHCHECK command (grpc-health-probe, built in the image at the version tools/go.mod
pins) sees SERVING and fails with no server, grpc-health-probe from outside sees SERVING, a chat with
a tool round goes through, the process runs as the non-root uid, and SIGTERM ends it with exit 0.

Then the image as deploy/kubernetes runs it: the sidecar's args from the manifest (a Unix socket in
an emptyDir, and the health-only port, here on a free loopback port), on a read-only root filesystem
with a tmpfs at the socket's folder; the manifest's gRPC probes, made by grpc-health-probe (grpc-go,
plaintext, no metadata: as kubelet makes them), see SERVING, and a chat goes through the socket.

Needs root (debootstrap, podman's storage, chroot), podman, and Go (the probe stage builds with this
machine's); `make test-container` installs them.
A build that fails fails the test: nothing here is skipped.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolwire.client import Client, Finish, ToolRequest, tool

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import container  # noqa: E402  (tools/container.py: the same build `make image` runs)

pytestmark = [pytest.mark.container, pytest.mark.timeout(1500)]

TAG = "localhost/toolwire:test"
DEPLOYMENT = ROOT / "deploy" / "kubernetes" / "deployment.yaml"
UID = 10001
START_TIMEOUT_SECONDS = 30
ANNOUNCE = "toolwire listening on "
HEALTH_ANNOUNCE = "toolwire health checks on "
GRPC_HEALTH_PROBE = ROOT / "tools" / "bin" / "grpc-health-probe"
GO_MOD = ROOT / "tools" / "go.mod"


@dataclass
class Image:
    tag: str
    config: dict[str, Any]
    healthcheck: dict[str, Any]
    """The HEALTHCHECK (podman shows it beside the config, not in it)."""
    rootfs: Path

    @property
    def environment(self) -> dict[str, str]:
        return dict(entry.split("=", 1) for entry in self.config["Env"] or [])

    @property
    def userspec(self) -> str:
        user = self.config["User"]
        return user if ":" in user else f"{user}:{user}"

    def chroot(self, *command: str, root: Path | None = None) -> list[str]:
        """A command line that runs `command` inside the image's filesystem as the image's user."""
        return ["chroot", f"--userspec={self.userspec}", str(root or self.rootfs), *command]


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A line in the test run's own output (shown by CI), even when the test passes."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        print(f"container: {line}")
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"container: {line}")


def _require_root_and_podman() -> None:
    if os.geteuid() != 0:
        pytest.fail(
            "the container test needs root (debootstrap, podman's storage, chroot): run `make test-container`"
        )
    if shutil.which("podman") is None or shutil.which("debootstrap") is None:
        pytest.fail("podman or debootstrap is missing: `make test-container` installs them")


@pytest.fixture(scope="module")
def image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """Builds the image (making the base first if it is missing) and exports its filesystem."""
    _require_root_and_podman()
    base_seconds = container.ensure_base()
    if base_seconds is not None:
        report(request, f"base image {container.BASE} made with debootstrap in {base_seconds:.1f} s")
    build_log = tmp_path_factory.mktemp("build") / "podman-build.log"
    with build_log.open("w+") as log:
        try:
            build_seconds = container.build(TAG, log=log)
        except subprocess.CalledProcessError as error:
            log.seek(0)
            pytest.fail(f"podman build failed ({error.returncode}):\n{log.read()[-6000:]}")
    size = container.image_size(TAG)
    report(
        request, f"image {TAG} built in {build_seconds:.1f} s; image size {size / 1e6:.1f} MB ({size} bytes)"
    )
    [inspected] = json.loads(container.podman("image", "inspect", TAG, capture=True))
    rootfs = tmp_path_factory.mktemp("rootfs")
    rootfs.chmod(0o755)  # the image's "/": its user must be able to enter it (pytest makes it 0700)
    # Only its filesystem is used: no healthcheck timer (there is no systemd here to run one).
    created = container.podman("create", "--no-healthcheck", TAG, capture=True).splitlines()[-1]
    try:
        # The recipe's `podman export ID | tar -C DIR -x`: tar keeps the numeric owners and the modes.
        with subprocess.Popen(
            ["podman", "--storage-driver", "vfs", "export", created], stdout=subprocess.PIPE
        ) as export:
            untar = subprocess.run(["tar", "-C", str(rootfs), "-x"], stdin=export.stdout, check=False)
        assert export.returncode == 0 and untar.returncode == 0, "podman export | tar -x failed"
    finally:
        container.podman("rm", "--force", created, capture=True)
    yield Image(TAG, inspected["Config"], inspected.get("Healthcheck") or {}, rootfs)
    shutil.rmtree(rootfs, ignore_errors=True)


@dataclass
class Running:
    process: subprocess.Popen[str]
    target: str
    started_seconds: float
    health_target: str = ""
    """The announced health-only address (`--health-listen`); empty: none."""


def _read_announce(process: subprocess.Popen[str], deadline: float) -> tuple[str, list[str]]:
    """Reads stdout until `toolwire listening on ADDRESS` or the deadline; returns the address, lines."""
    assert process.stdout is not None
    lines: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith(ANNOUNCE):
                return line.removeprefix(ANNOUNCE).strip(), lines
    return "", lines


def _with_listen(command: list[str], address: str, flag: str = "--listen") -> list[str]:
    """The image's command with the value of `flag` replaced (`podman run IMAGE serve --listen ...`)."""
    assert flag in command, f"the image's command sets no {flag}: {command}"
    index = command.index(flag) + 1
    return [*command[:index], address, *command[index + 1 :]]


@contextmanager
def serving(
    image: Image, command: list[str], log_folder: Path, root: Path | None = None
) -> Iterator[Running]:
    """Starts `command` in the image's filesystem (or `root`) as its user, with its environment, and
    waits for the announce; kills it on the way out if a test has not stopped it."""
    started = time.monotonic()
    with (log_folder / "stderr.log").open("w+") as stderr:
        process = subprocess.Popen(
            image.chroot(*command, root=root),
            env=image.environment,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        target, output = _read_announce(process, started + START_TIMEOUT_SECONDS)
        health_target = ""
        if target and "--health-listen" in command:
            # In the same write as the listen line, so already read into stdout's buffer (which the
            # selector does not see): a plain readline gets it, or "" if the server ended.
            assert process.stdout is not None
            line = process.stdout.readline()
            output.append(line)
            health_target = (
                line.removeprefix(HEALTH_ANNOUNCE).strip() if line.startswith(HEALTH_ANNOUNCE) else ""
            )
        try:
            if not target or ("--health-listen" in command and not health_target):
                stderr.seek(0)
                pytest.fail(
                    f"the image's server did not announce its addresses: {''.join(output)}{stderr.read()}"
                )
            yield Running(process, target, time.monotonic() - started, health_target)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()
            stderr.seek(0)
            print(f"\ncontainer: the server's log:\n{stderr.read()}")


@pytest.fixture(scope="module")
def running(
    image: Image, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """The image's ENTRYPOINT + CMD, started in its filesystem as its user, on a free loopback port."""
    command = _with_listen([*image.config["Entrypoint"], *image.config["Cmd"]], "127.0.0.1:0")
    with serving(image, command, tmp_path_factory.mktemp("server")) as server:
        report(
            request,
            f"the image's server announced {server.target} {server.started_seconds:.2f} s after its start",
        )
        yield server


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def test_image_config(image: Image) -> None:
    config = image.config
    assert config["Entrypoint"] == ["toolwire"]
    assert config["Cmd"] == ["serve", "--listen", "0.0.0.0:50051"]
    assert config["User"] == f"{UID}:{UID}"
    assert "50051/tcp" in config["ExposedPorts"]
    assert image.healthcheck["Test"][:2] == ["CMD", "grpc-health-probe"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "toolwire"
    assert len(labels["org.opencontainers.image.revision"]) == 40
    # Nothing secret is baked in: no key in the environment, the build's CA secret not in a layer.
    names = set(image.environment)
    assert not names & {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "TOOLWIRE_AUTH_TOKEN", "PIP_CERT"}
    assert not (image.rootfs / "run/secrets/ca_bundle").exists()
    assert not (image.rootfs / "src").exists(), "the build stage's sources leaked into the runtime image"


def test_runs_as_the_non_root_user(image: Image, running: Running) -> None:
    status = Path(f"/proc/{running.process.pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    gids = next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1:]
    assert set(uids) == {str(UID)} and set(gids) == {str(UID)}
    passwd = (image.rootfs / "etc/passwd").read_text()
    assert f"toolwire:x:{UID}:{UID}:" in passwd


def _healthcheck_at(image: Image, address: str) -> subprocess.CompletedProcess[str]:
    """The HEALTHCHECK command, run inside the image as Docker would, aimed at `address`."""
    test = image.healthcheck["Test"]
    assert test[0] == "CMD"
    command = [f"-addr={address}" if part.startswith("-addr=") else part for part in test[1:]]
    assert f"-addr={address}" in command, f"the HEALTHCHECK names no -addr: {test}"
    return subprocess.run(
        image.chroot(*command), env=image.environment, capture_output=True, text=True, timeout=30, check=False
    )


def test_the_images_healthcheck_answers(image: Image, running: Running) -> None:
    checked = _healthcheck_at(image, running.target)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SERVING" in checked.stdout + checked.stderr


def test_the_images_healthcheck_fails_with_no_server(image: Image) -> None:
    with socket.socket() as unused:  # a free port, closed again: nothing listens on it
        unused.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{unused.getsockname()[1]}"
    checked = _healthcheck_at(image, address)
    assert checked.returncode != 0, checked.stdout + checked.stderr


def test_the_healthcheck_probe_is_the_pinned_static_build(image: Image) -> None:
    """grpc-health-probe in the image is the version tools/go.mod pins, built without cgo (no libc
    needed in any base) and stripped of the build machine's paths."""
    pinned = re.search(r"^\s*github\.com/grpc-ecosystem/grpc-health-probe (v\S+)", GO_MOD.read_text(), re.M)
    assert pinned, "tools/go.mod pins no grpc-health-probe"
    probe = image.rootfs / "usr/local/bin/grpc-health-probe"
    build_info = subprocess.run(
        ["go", "version", "-m", str(probe)], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    module = rf"^\s*mod\s+github\.com/grpc-ecosystem/grpc-health-probe\s+{re.escape(pinned[1])}\s"
    assert re.search(module, build_info, re.M), build_info
    assert re.search(r"^\s*build\s+CGO_ENABLED=0$", build_info, re.M), build_info
    assert re.search(r"^\s*build\s+-trimpath=true$", build_info, re.M), build_info


def grpc_health_probe(address: str, service: str = "") -> None:
    """Checks `address` with grpc-health-probe (grpc-go, plaintext, no metadata) and asserts SERVING."""
    if not GRPC_HEALTH_PROBE.exists():
        pytest.fail(f"{GRPC_HEALTH_PROBE} is missing: run `make setup`")
    checked = subprocess.run(
        [str(GRPC_HEALTH_PROBE), f"-addr={address}", f"-service={service}", "-connect-timeout=5s",
         "-rpc-timeout=5s"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SERVING" in checked.stdout + checked.stderr


def test_grpc_health_probe_sees_serving(running: Running) -> None:
    grpc_health_probe(running.target)


@tool
def get_weather(location: str) -> dict[str, object]:
    """Current weather for a place.

    Args:
        location: A city name.
    """
    return {"location": location, "sky": "sunny"}


async def chat_weather(target: str) -> None:
    async with Client(target) as client:
        events = [
            event async for event in client.chat("scripted/weather", "Weather in Paris?", tools=[get_weather])
        ]
    assert [(e.name, e.arguments) for e in events if isinstance(e, ToolRequest)] == [
        ("get_weather", {"location": "Paris"})
    ]
    finish = events[-1]
    assert isinstance(finish, Finish)
    assert (finish.text, finish.tools_called) == ("It is sunny in Paris.", ["get_weather"])


async def test_a_chat_with_a_tool_round(running: Running, request: pytest.FixtureRequest) -> None:
    await chat_weather(running.target)
    memory = _rss_kib(running.process.pid) / 1024
    report(request, f"the server's resident memory after a chat: {memory:.0f} MiB")


def test_sigterm_stops_it_with_exit_0(running: Running) -> None:
    """Last in this file: it stops the module's server, as an orchestrator would."""
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=30) == 0


@dataclass
class Sidecar:
    server: Running
    spec: dict[str, Any]
    """The toolwire container of deploy/kubernetes/deployment.yaml."""
    root: Path
    """The read-only root it runs in."""


@pytest.fixture(scope="module")
def sidecar(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    """The image as deploy/kubernetes runs it: the manifest's args (a Unix socket in an emptyDir; the
    health-only address moved to a free loopback port, as this machine's network is shared), the
    root filesystem read-only (a read-only bind mount of the exported one), a tmpfs owned by the
    image's user at the socket's folder (the emptyDir)."""
    [deployment] = [d for d in yaml.safe_load_all(DEPLOYMENT.read_text()) if d["kind"] == "Deployment"]
    [spec] = [c for c in deployment["spec"]["template"]["spec"]["initContainers"] if c["name"] == "toolwire"]
    [mount] = spec["volumeMounts"]
    folder = mount["mountPath"].lstrip("/")
    (image.rootfs / folder).mkdir(parents=True, exist_ok=True)  # kubelet makes the mount point
    root = tmp_path_factory.mktemp("read-only-root")
    tmpfs_options = f"size=1m,mode=0770,uid={UID},gid={UID}"
    mounted: list[Path] = []
    try:
        subprocess.run(["mount", "--bind", str(image.rootfs), str(root)], check=True, timeout=30)
        mounted.append(root)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(root)], check=True, timeout=30)
        tmpfs = ["mount", "-t", "tmpfs", "-o", tmpfs_options, "tmpfs", str(root / folder)]
        subprocess.run(tmpfs, check=True, timeout=30)
        mounted.append(root / folder)
        command = _with_listen([*image.config["Entrypoint"], *spec["args"]], "127.0.0.1:0", "--health-listen")
        with serving(image, command, tmp_path_factory.mktemp("sidecar"), root) as server:
            yield Sidecar(server, spec, root)
    finally:
        for point in reversed(mounted):
            subprocess.run(["umount", "--lazy", str(point)], check=False, timeout=30)


def test_sidecar_probes_answer_on_a_read_only_root(image: Image, sidecar: Sidecar) -> None:
    arguments = sidecar.spec["args"]
    assert sidecar.server.target == arguments[arguments.index("--listen") + 1]
    cannot_write = subprocess.run(
        image.chroot("touch", "/write-test", root=sidecar.root), capture_output=True, text=True, check=False
    )
    assert cannot_write.returncode != 0 and "Read-only file system" in cannot_write.stderr
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):  # as kubelet makes them
        grpc_health_probe(sidecar.server.health_target, sidecar.spec[probe]["grpc"].get("service", ""))
    # The exec probes README offers for clusters without gRPC probes, run inside the image.
    socket_path = sidecar.server.target.removeprefix("unix:")
    for exec_probe in (
        ["grpc-health-probe", f"-addr=unix://{socket_path}", "-connect-timeout=3s", "-rpc-timeout=3s"],
        ["toolwire", "health", "--address", sidecar.server.target, "--timeout", "3"],
    ):
        checked = subprocess.run(
            image.chroot(*exec_probe, root=sidecar.root),
            env=image.environment,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert checked.returncode == 0, f"{exec_probe}: {checked.stdout}{checked.stderr}"
        assert "SERVING" in checked.stdout + checked.stderr


async def test_sidecar_chat_through_the_socket(sidecar: Sidecar) -> None:
    """The application's side: the socket in the shared folder (seen here from outside the chroot)."""
    await chat_weather(f"unix:{sidecar.root / sidecar.server.target.removeprefix('unix:/')}")


def test_sidecar_stops_on_sigterm_with_exit_0(sidecar: Sidecar) -> None:
    sidecar.server.process.send_signal(signal.SIGTERM)
    assert sidecar.server.process.wait(timeout=30) == 0

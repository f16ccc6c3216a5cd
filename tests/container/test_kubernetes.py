"""deploy/kubernetes, checked statically (no cluster here): the manifests validate against the
Kubernetes API's own schemas (kubernetes-validate, strict: an unknown or misspelt field fails), and
the sidecar wiring holds together: the socket volume, the health-only port and the probes on it, the
security context, the Secret, and the sidecar's arguments use flags `toolwire` really has."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

pytestmark = [pytest.mark.container, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
TOOLWIRE = Path(sys.executable).parent / "toolwire"
# Native sidecars (restartPolicy: Always on an init container) are on by default from 1.29.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
SOCKET = "unix:/run/toolwire/toolwire.sock"


def documents() -> dict[str, dict[str, Any]]:
    """Every YAML document under deploy/kubernetes, by kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                assert document["kind"] not in found, f"two {document['kind']}s"
                found[document["kind"]] = document
    return found


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    return documents()


@pytest.fixture(scope="module")
def pod(manifests) -> dict[str, Any]:
    spec: dict[str, Any] = manifests["Deployment"]["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def sidecar(pod) -> dict[str, Any]:
    [toolwire] = [c for c in pod.get("initContainers", []) if c["name"] == "toolwire"]
    return toolwire


@pytest.fixture(scope="module")
def app(pod) -> dict[str, Any]:
    [application] = pod["containers"]
    return application


def command_flags(*command: str) -> set[str]:
    """The long flags `toolwire COMMAND --help` lists."""
    helped = subprocess.run([str(TOOLWIRE), *command, "--help"], capture_output=True, text=True, check=True)
    return set(re.findall(r"--[a-z][a-z-]+", helped.stdout))


def flag_value(arguments: list[str], flag: str) -> str:
    assert arguments.count(flag) == 1, f"{flag} in {arguments}"
    return arguments[arguments.index(flag) + 1]


def test_the_kinds_and_the_kustomization(manifests) -> None:
    assert set(manifests) == {"Secret", "Deployment", "Kustomization"}
    listed = manifests["Kustomization"]["resources"]
    assert sorted(listed) == sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kind", ["Secret", "Deployment"])
def test_valid_against_the_kubernetes_schema(manifests, kind: str, version: str) -> None:
    try:
        kubernetes_validate.validate(manifests[kind], version, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{kind} is not valid for Kubernetes {version}: {error}")


def test_toolwire_is_a_native_sidecar(sidecar) -> None:
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["image"].split("/")[-1].startswith("toolwire:")


def test_sidecar_listens_on_the_shared_socket_with_documented_flags(sidecar, app, pod) -> None:
    arguments = sidecar["args"]
    assert "command" not in sidecar, "the image's ENTRYPOINT (toolwire) is kept"
    assert arguments[0] == "serve"
    used = {a.split("=")[0] for a in arguments if a.startswith("--")}
    assert used <= command_flags("serve"), used - command_flags("serve")
    assert flag_value(arguments, "--listen") == SOCKET
    # The socket's folder is one emptyDir volume, mounted in both containers at that folder.
    socket_folder = str(Path(SOCKET.removeprefix("unix:")).parent)
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in (sidecar, app):
        [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == socket_folder]
        assert "emptyDir" in volumes[mount["name"]]
        assert not mount.get("readOnly"), "connecting to a socket needs write access to it"
    assert {e["name"]: e.get("value") for e in app["env"]}["TOOLWIRE_ADDRESS"] == SOCKET


def health_port(sidecar) -> int:
    """The port of the sidecar's --health-listen, a wildcard host: kubelet dials the pod IP."""
    host, _, port = flag_value(sidecar["args"], "--health-listen").rpartition(":")
    assert host in ("0.0.0.0", "[::]"), host
    return int(port)


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_probes_are_kubelets_grpc_probes_on_the_health_port(sidecar, probe: str) -> None:
    """Native gRPC probes: no process started in the pod per probe (an exec probe starts Python)."""
    assert set(sidecar[probe]) & {"exec", "httpGet", "tcpSocket", "grpc"} == {"grpc"}
    assert sidecar[probe]["grpc"]["port"] == health_port(sidecar)
    assert sidecar[probe]["grpc"].get("service", "") in ("", "toolwire.v1.ChatService")
    assert sidecar[probe]["timeoutSeconds"] >= 1


def test_security_context(pod, sidecar, app) -> None:
    image_user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert image_user is not None
    pod_context = pod["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    # One uid for both containers (the socket is theirs), the image's own.
    assert (str(pod_context["runAsUser"]), str(pod_context["runAsGroup"])) == image_user.groups()
    assert pod_context["fsGroup"] == pod_context["runAsGroup"]
    assert pod["automountServiceAccountToken"] is False
    for container in (sidecar, app):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "privileged" not in context or context["privileged"] is False


def test_resources_requested_and_limited(sidecar, app) -> None:
    for container in (sidecar, app):
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), (container["name"], bound)


def test_api_keys_come_from_the_secret_template(manifests, sidecar) -> None:
    secret = manifests["Secret"]
    keys = {e["name"]: e for e in sidecar["env"] if e["name"].endswith("_API_KEY")}
    assert set(keys) == {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"}
    for name, entry in keys.items():
        assert "value" not in entry, f"{name} is written into the manifest"
        reference = entry["valueFrom"]["secretKeyRef"]
        assert reference["name"] == secret["metadata"]["name"]
        assert reference["key"] in secret["stringData"]
    # A template: placeholders, plainly not keys.
    for value in secret["stringData"].values():
        assert value.startswith("REPLACE-ME") and "not-a-real-key" in value
    assert not any(name.endswith("_API_KEY") for name in (sidecar.get("args") or []))


def test_only_the_health_port_is_on_the_pod_network(sidecar) -> None:
    """The chat API stays on the socket; the pod network sees the health-only port, declared."""
    assert flag_value(sidecar["args"], "--listen").startswith("unix:")
    wildcards = [a for a in sidecar["args"] if a.startswith(("0.0.0.0:", "[::]:"))]
    assert wildcards == [flag_value(sidecar["args"], "--health-listen")]
    assert [port["containerPort"] for port in sidecar["ports"]] == [health_port(sidecar)]

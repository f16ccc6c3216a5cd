"""Real gRPC tools nobody here wrote, against a real server process: grpcurl (reflection, ListModels,
a whole Chat with a tool round over its standard input) and grpc-health-probe.

Both come from tools/go.mod and are installed into tools/bin by `make setup`.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.e2e.conftest import ServerProcess, start_server, stop_server

pytestmark = pytest.mark.timeout(60)

TOOLS = Path(__file__).parents[2] / "tools" / "bin"
TIMEOUT_SECONDS = 20
WEATHER_SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}


def tool_path(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make setup` (it installs the tools pinned in tools/go.mod)")
    return str(path)


def grpcurl(server: ServerProcess, *arguments: str, flags: tuple[str, ...] = ()) -> str:
    """Runs `grpcurl -plaintext FLAGS TARGET ARGUMENTS...` and returns what it printed."""
    completed = subprocess.run(
        [tool_path("grpcurl"), "-plaintext", *flags, server.target, *arguments],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def json_objects(stream: IO[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects grpcurl prints one after another (pretty-printed over several lines)."""
    decoder = json.JSONDecoder()
    pending = ""
    for line in stream:
        pending += line
        try:
            value, _end = decoder.raw_decode(pending.strip())
        except json.JSONDecodeError:
            continue
        pending = ""
        yield value
    assert not pending.strip(), f"grpcurl printed an incomplete object: {pending!r}"


def converse(process: subprocess.Popen[str], start: dict[str, Any]) -> list[dict[str, Any]]:
    """Writes `start` to grpcurl, answers the ToolRequest when it is printed, returns every event."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(start) + "\n")
    process.stdin.flush()
    events = []
    for event in json_objects(process.stdout):
        events.append(event)
        if "toolRequest" in event:
            # Answer on the same stream, as a client would, then close our side.
            result = {"toolCallId": event["toolRequest"]["toolCallId"], "content": "cloudy, said grpcurl"}
            process.stdin.write(json.dumps({"toolResult": result}) + "\n")
            process.stdin.close()
    return events


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    process = start_server()
    yield process
    assert stop_server(process) == 0


def test_grpcurl_lists_the_services_through_reflection(server):
    services = grpcurl(server, "list").split()
    assert {"toolwire.v1.ChatService", "grpc.health.v1.Health"} <= set(services)
    description = grpcurl(server, "describe", "toolwire.v1.ChatService")
    assert (
        "rpc Chat ( stream .toolwire.v1.ChatRequest ) returns ( stream .toolwire.v1.ChatResponse )"
        in description
    )
    message = grpcurl(server, "describe", "toolwire.v1.ToolRequest")
    assert "string tool_call_id = 1;" in message


def test_grpcurl_calls_list_models(server):
    response = json.loads(grpcurl(server, "toolwire.v1.ChatService/ListModels", flags=("-d", "{}")))
    ids = [model["id"] for model in response["models"]]
    assert "scripted/weather" in ids and ids == sorted(ids)


def test_grpcurl_drives_a_whole_chat_with_a_tool_round_over_stdin(server):
    start = {
        "start": {
            "model": "scripted/weather",
            "messages": [{"role": "ROLE_USER", "content": "Weather in Paris?"}],
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Current weather for a place.",
                    "parametersJsonSchema": json.dumps(WEATHER_SCHEMA),
                }
            ],
        }
    }
    with subprocess.Popen(
        [tool_path("grpcurl"), "-plaintext", "-d", "@", server.target, "toolwire.v1.ChatService/Chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        watchdog = threading.Timer(TIMEOUT_SECONDS, process.kill)
        watchdog.start()
        try:
            events = converse(process, start)
            assert process.wait() == 0, process.stderr.read() if process.stderr else ""
        finally:
            watchdog.cancel()
            process.kill()
    kinds = [next(iter(event)) for event in events]
    assert kinds[0] == "started" and kinds[-1] == "finish"
    request = next(event["toolRequest"] for event in events if "toolRequest" in event)
    assert (request["name"], json.loads(request["argumentsJson"])) == ("get_weather", {"location": "Paris"})
    finish = events[-1]["finish"]
    assert (finish["reason"], finish["text"], finish["toolsCalled"]) == (
        "FINISH_REASON_STOP",
        "It is sunny in Paris.",
        ["get_weather"],
    )
    tool_message = next(message for message in finish["messages"] if message["role"] == "ROLE_TOOL")
    assert tool_message == {
        "role": "ROLE_TOOL",
        "content": "cloudy, said grpcurl",
        "toolCallId": request["toolCallId"],
    }


def test_grpcurl_shows_a_bad_request_as_invalid_argument(server):
    completed = subprocess.run(
        [tool_path("grpcurl"), "-plaintext", "-d", '{"start": {"model": "scripted/echo"}}', server.target,
         "toolwire.v1.ChatService/Chat"],
        capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    assert completed.returncode != 0
    assert "Code: InvalidArgument" in completed.stderr and "messages" in completed.stderr


@pytest.mark.parametrize("service", ["", "toolwire.v1.ChatService"])
def test_grpc_health_probe_reports_serving(server, service):
    completed = subprocess.run(
        [tool_path("grpc-health-probe"), "-addr", server.target, "-service", service],
        capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "status: SERVING" in completed.stdout + completed.stderr


def test_grpc_health_probe_fails_when_nothing_listens():
    stopped = start_server()
    target = stopped.target
    assert stop_server(stopped) == 0
    completed = subprocess.run(
        [tool_path("grpc-health-probe"), "-addr", target, "-connect-timeout", "2s", "-rpc-timeout", "2s"],
        capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    assert completed.returncode != 0

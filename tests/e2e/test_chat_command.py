"""`toolwire chat MODEL PROMPT` as a person runs it: a real process, its stdout and stderr."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import TOOLWIRE, ServerProcess, start_server, stop_server
from tests.fakes.provider import FakeProvider, Reply
from toolwire.server.chat_command import calculate, get_time

pytestmark = pytest.mark.timeout(60)

OPENAI_KEY = "sk-chat-command-secret-0123456789"


def toolwire_chat(*arguments: str, environment: dict[str, str] | None = None, stdin: str | None = None):
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OPENAI_", "ANTHROPIC_", "TOOLWIRE_"))
    }
    return subprocess.run(
        [str(TOOLWIRE), "chat", *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=45,
        env={**clean, **(environment or {})},
        check=False,
    )


def test_a_scripted_chat_streams_the_answer_to_stdout_and_the_tool_calls_to_stderr():
    completed = toolwire_chat("scripted/weather", "Weather in Paris?")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "Let me check the weather in Paris.\n\nIt is sunny in Paris.\n"
    lines = completed.stderr.splitlines()
    assert lines[0] == '[tool] get_weather({"location": "Paris"})'
    assert lines[1].startswith('[tool] -> {"location": "Paris", "sky": "sunny"')
    assert lines[2].startswith(
        "[stop] scripted/weather: 2 model calls, tools: get_weather, tokens 52 in / 16 out"
    )


def test_the_prompt_can_come_from_stdin():
    completed = toolwire_chat("scripted/echo", "-", stdin="Echo this, please\n")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "Echo this, please\n"


@pytest.fixture(scope="module")
def running_server() -> Iterator[ServerProcess]:
    server = start_server()
    yield server
    assert stop_server(server) == 0


def test_with_target_a_failed_chat_exits_1_with_the_status(running_server):
    completed = toolwire_chat("scripted/unavailable", "hi", "--target", running_server.target)
    assert completed.returncode == 1
    assert "toolwire chat: UNAVAILABLE: the model is overloaded" in completed.stderr


def test_a_tool_call_the_server_refuses_is_shown(running_server):
    # scripted/parallel calls get_time with {"city": ...}; the demo get_time takes a timezone
    completed = toolwire_chat("scripted/parallel", "both", "--target", running_server.target)
    assert completed.returncode == 0, completed.stderr
    assert "[tool] get_time refused by the server:" in completed.stderr
    assert '[tool] get_weather({"location": "Paris"})' in completed.stderr


def test_a_missing_key_says_which_variable_to_set():
    completed = toolwire_chat("openai/gpt-4o-mini", "hi")
    assert completed.returncode == 1
    assert "FAILED_PRECONDITION" in completed.stderr and "OPENAI_API_KEY" in completed.stderr


def sse(*chunks: dict) -> Reply:
    body = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
    return Reply(body=body.encode())


def delta(content: dict, finish_reason: str | None = None) -> dict:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-test",
            "choices": [{"index": 0, "delta": content, "finish_reason": finish_reason}]}  # fmt: skip


def test_a_provider_chat_runs_a_demo_tool_and_the_key_stays_out_of_the_output():
    call = {"index": 0, "id": "call_calc", "type": "function",
            "function": {"name": "calculate", "arguments": '{"expression": "6 * 7"}'}}  # fmt: skip
    with FakeProvider() as fake:
        fake.enqueue(
            sse(delta({"role": "assistant", "tool_calls": [call]}), delta({}, "tool_calls")),
            sse(delta({"content": "It is 42."}), delta({}, "stop")),
        )
        environment = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": f"{fake.url}/v1"}
        completed = toolwire_chat("openai/gpt-test", "What is 6 times 7?", environment=environment)
        follow_up = fake.requests[1].json()
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "It is 42.\n"
    assert "[tool] -> 42" in completed.stderr
    assert follow_up["messages"][-1] == {"role": "tool", "tool_call_id": "call_calc", "content": "42"}
    assert OPENAI_KEY not in completed.stdout + completed.stderr


@pytest.mark.parametrize(
    ("expression", "value"),
    [("6 * 7", 42), ("(17.5 * 3) / 2", 26.25), ("-2 ** 3", -8), ("7 // 2 + 7 % 2", 4)],
)
def test_calculate_evaluates_arithmetic(expression, value):
    assert calculate.function(expression) == value


@pytest.mark.parametrize("expression", ["__import__('os')", "2 ** 1000", "'a' * 3", "x + 1", "True + 1"])
def test_calculate_refuses_anything_else(expression):
    with pytest.raises(ValueError, match=r"allowed|refused"):
        calculate.function(expression)


def test_get_time_names_a_bad_time_zone():
    assert get_time.function("Europe/Paris")[:4].isdigit()
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        get_time.function("Mars/Olympus")

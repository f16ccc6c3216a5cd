"""Script parsing: every malformed script is refused with the file and the place."""

from __future__ import annotations

import json

import pytest

from toolwire.server.events import StopReason, TextDelta, ToolCallFragment
from toolwire.server.models.scripted import Delay, Fault, ScriptError, load_scripts, parse_script


def test_the_documented_example_parses():
    script = parse_script(
        "weather",
        {
            "turns": [
                {
                    "chunks": [
                        {"text": "Let me check"},
                        {
                            "tool_call": {
                                "index": 0,
                                "id": "call_1",
                                "name": "get_weather",
                                "arguments": '{"loc',
                            }
                        },
                        {"delay_ms": 50},
                        {"error": {"code": "UNAVAILABLE", "message": "down"}},
                    ],
                    "usage": {"input_tokens": 12, "output_tokens": 9},
                },
                {"chunks": [{"text": "ok"}], "finish_reason": "length"},
            ]
        },
        "weather.json",
    )
    first, second = script.turns
    assert first.items == (
        TextDelta("Let me check"),
        ToolCallFragment(0, "call_1", "get_weather", '{"loc'),
        Delay(0.05),
        Fault("UNAVAILABLE", "down"),
    )
    assert first.stop_reason is StopReason.TOOL_CALLS  # the default when a turn calls tools
    assert (first.usage.input_tokens, first.usage.output_tokens) == (12, 9)
    assert (second.stop_reason, second.usage) == (StopReason.LENGTH, None)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "non-empty list 'turns'"),
        ({"turns": []}, "non-empty list 'turns'"),
        ({"turns": ["x"]}, r"turns\[0\]: a turn is an object"),
        ({"turns": [{"chunks": [{"text": "a", "delay_ms": 1}]}]}, r"chunks\[0\]: a chunk has exactly one"),
        ({"turns": [{"chunks": [{"sound": "beep"}]}]}, "unknown or mistyped chunk 'sound'"),
        ({"turns": [{"chunks": [{"delay_ms": -1}]}]}, "unknown or mistyped chunk 'delay_ms'"),
        ({"turns": [{"chunks": [{"error": {"code": "OOPS"}}]}]}, "not a gRPC status code name"),
        ({"turns": [{"chunks": [{"tool_call": {"idx": 0}}]}]}, r"unknown keys \['idx'\]"),
        ({"turns": [{"chunks": [{"tool_call": {"name": 5}}]}]}, "are strings"),
        ({"turns": [{"chunks": [], "finish_reason": "done"}]}, "finish_reason 'done' is not one of"),
        ({"turns": [{"chunks": [], "usage": {"input_tokens": "many"}}]}, "usage must be an object"),
    ],
)
def test_malformed_scripts_are_refused_with_the_place(document, message):
    with pytest.raises(ScriptError, match=message) as raised:
        parse_script("bad", document, "bad.json")
    assert str(raised.value).startswith("bad.json")


def test_a_directory_adds_scripts_and_wins_over_builtins(tmp_path):
    (tmp_path / "weather.json").write_text(json.dumps({"turns": [{"chunks": [{"text": "mine"}]}]}))
    (tmp_path / "extra.json").write_text(json.dumps({"description": "extra one", "turns": [{"chunks": []}]}))
    scripts = load_scripts([tmp_path])
    assert scripts["weather"].turns[0].items == (TextDelta("mine"),)
    assert scripts["extra"].description == "extra one"
    assert "weather" in load_scripts()  # built in


def test_bad_json_and_missing_directories_are_reported(tmp_path):
    (tmp_path / "broken.json").write_text("{nope")
    with pytest.raises(ScriptError, match=r"broken\.json: not valid JSON"):
        load_scripts([tmp_path])
    with pytest.raises(ScriptError, match="not a directory"):
        load_scripts([tmp_path / "missing"])

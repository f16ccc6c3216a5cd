"""bench/report.py: the start-up rows, and runs recorded before them still render."""

from __future__ import annotations

from bench import report


def test_each_key_set_gets_a_start_up_row_with_its_medians():
    rows = report._Rows(["direct", "toolwire"])
    results = {
        "startup_rounds": 7,
        "startup": {
            "no provider key": {"seconds": 0.8123, "rss_mib": 57.9},
            "OpenAI and Anthropic keys": {"seconds": 3.6, "rss_mib": 123.8},
        },
    }
    report._startup_rows(rows, results)
    assert rows.lines == [
        "| server start to `listening` with no provider key (s / MiB resident then; median of 7) "
        "| | 0.81 s / 58 MiB | | | | | | |",
        "| server start to `listening` with OpenAI and Anthropic keys (s / MiB resident then; median of 7) "
        "| | 3.60 s / 124 MiB | | | | | | |",
    ]


def test_a_run_recorded_before_start_up_was_measured_has_no_start_up_row():
    rows = report._Rows(["direct", "toolwire"])
    report._startup_rows(rows, {})
    assert rows.lines == []

# ruff: noqa: RUF001
"""bench/report.py: the start-up and health-probe rows, and runs recorded before them still render."""

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


def _probes(**extra: float) -> dict[str, object]:
    """Probe results as bench/probes.py records them: exec 252 ms a probe, gRPC 2.4 (+ 11.0 the probe's)."""
    return {
        "probes": {
            "exec": {"probe_ms": 250.0, "server_ms": 2.0},
            "grpc": {"probe_ms": 11.0, "server_ms": 2.4},
            "probes_per_second": 0.15,
            "rounds": 3,
            "exec_batch": 10,
            "grpc_batch": 100,
            **extra,
        }
    }


def test_probe_rows_give_the_pods_cpu_per_probe_and_at_the_manifests_periods():
    rows = report._Rows(["direct", "toolwire"])
    report._probe_rows(rows, _probes())
    assert rows.lines[0].startswith("| health probe, exec `toolwire health` over the socket")
    assert "median of 3 rounds of 10) | | 252.0 (250.0 + 2.00) |" in rows.lines[0]
    assert "median of 3 rounds of 100) | | 2.40 |" in rows.lines[1]
    # 252 ms and 2.4 ms of CPU per probe, 0.15 probes a second: 37.8 and 0.36 millicores
    assert "(0.15 a second)" in rows.lines[2] and "| | 37.8 and 0.36 (105.0× less) |" in rows.lines[2]
    assert len(rows.lines) == 3, "a run that did not measure the Docker HEALTHCHECK has no row for it"


def test_the_docker_healthcheck_row_counts_the_probes_process_at_the_dockerfiles_interval():
    rows = report._Rows(["direct", "toolwire"])
    report._probe_rows(rows, _probes(docker_probes_per_second=1 / 15))
    # 13.4 ms a probe (11.0 + 2.40) every 15 s is 0.89 millicores; `toolwire health`'s 252 ms, 16.8
    assert rows.lines[3].startswith("| Docker's HEALTHCHECK, grpc-health-probe in the container every 15 s:")
    assert "| | 13.4 (11.0 + 2.40), 0.89 against 16.8 (18.8× less) |" in rows.lines[3]


def test_the_docker_interval_is_the_dockerfiles():
    from bench import probes

    assert probes.docker_interval_seconds() == 15.0  # Dockerfile: HEALTHCHECK --interval=15s


def test_a_run_recorded_before_probes_were_measured_has_no_probe_row():
    rows = report._Rows(["direct", "toolwire"])
    report._probe_rows(rows, {})
    assert rows.lines == []


def _litellm_over_toolwire(direct: float, toolwire: float, litellm: float) -> str:
    rows = report._Rows(["direct", "toolwire", "litellm"])
    rows.added("lag p99", {"direct": direct, "toolwire": toolwire, "litellm": litellm}, bar=None)
    return rows.lines[0].split("|")[8].strip()


def test_litellms_added_latency_is_divided_by_toolwires_only_when_toolwire_adds_a_measurable_amount():
    assert _litellm_over_toolwire(direct=1.0, toolwire=1.5, litellm=6.0) == "10.0×"
    assert _litellm_over_toolwire(direct=1.90, toolwire=1.903, litellm=10.44) == "–"  # 0.003 ms added
    assert _litellm_over_toolwire(direct=1.90, toolwire=1.0, litellm=10.44) == "–"  # toolwire adds none

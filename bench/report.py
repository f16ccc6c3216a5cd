# ruff: noqa: RUF001
"""Turns bench/run.py's results into a table (stdout), docs/performance.md's generated section and
docs/performance-lag.png. The hand-written text of docs/performance.md outside the markers stays."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench import report_go
from bench.stats import percentile

BEGIN = "<!-- bench:begin (written by make bench: edit bench/report.py, not this section) -->"
END = "<!-- bench:end -->"


def _fmt(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(numerator: float, denominator: float) -> str:
    if any(v is None or math.isnan(v) for v in (numerator, denominator)) or denominator <= 0:
        return "–"
    return f"{numerator / denominator:.1f}×"


SMALLEST_ADDED_MS = 0.05
"""An added latency below this (ms) is within a run's noise: no ratio is taken against it."""


def _added_ratio(litellm_added: float, toolwire_added: float) -> str:
    """LiteLLM's added latency over toolwire's, or a dash when toolwire's is too small to divide by
    (a ratio against 0.00 ms, say, is only its rounding); `_ratio` gives the dash for NaN."""
    return "–" if toolwire_added < SMALLEST_ADDED_MS else _ratio(litellm_added, toolwire_added)


class _Rows:
    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.lines: list[str] = []
        self.verdicts: list[tuple[str, str, bool | None]] = []

    def added(
        self,
        name: str,
        values: dict[str, float],
        bar: float | None,
        unit: str = "ms",
        floor: float | None = None,
        also: float | None = None,
    ) -> None:
        """A latency: each path's value, toolwire's addition over direct, LiteLLM's, and the bar.

        `floor` replaces the direct figure as what is subtracted (the direct SDK at one stream, for
        rows where the direct consumer saturates first). `also` is another added figure the bar must
        hold for too (a p99 row's p50: a p99 cannot pass where the p50 fails).
        """
        direct = values.get("direct", float("nan"))
        tw = values.get("toolwire", float("nan"))
        ll = values.get("litellm", float("nan"))
        base = direct if floor is None else floor
        tw_added, ll_added = tw - base, ll - base
        holds = None if bar is None or math.isnan(tw_added) else tw_added <= bar
        if holds and also is not None:
            holds = also <= bar
        self.lines.append(
            f"| {name} | {_fmt(direct)} | {_fmt(tw)} | {_fmt(ll)} | **{_fmt(tw_added)}** | {_fmt(ll_added)} "
            f"| {_ratio(tw, direct)} | {_added_ratio(ll_added, tw_added)} | "
            f"{'' if bar is None else f'≤ {bar:g} {unit}'} {_mark(holds)} |"
        )
        if bar is not None:
            self.verdicts.append((f"{name}: added {_fmt(tw_added)} {unit} (bar ≤ {bar:g})", name, holds))

    def plain(
        self, name: str, values: dict[str, float], bar: str, holds: bool | None, digits: int = 1
    ) -> None:
        direct = values.get("direct", float("nan"))
        tw = values.get("toolwire", float("nan"))
        ll = values.get("litellm", float("nan"))
        self.lines.append(
            f"| {name} | {_fmt(direct, digits)} | {_fmt(tw, digits)} | {_fmt(ll, digits)} | | "
            f"| {_ratio(tw, direct)} | {_ratio(ll, tw)} | {bar} {_mark(holds)} |"
        )
        if holds is not None:
            self.verdicts.append((f"{name}: {_fmt(tw, digits)} ({bar})", name, holds))


def _mark(holds: bool | None) -> str:
    return "" if holds is None else ("✅" if holds else "❌")


def _each(figures: dict[str, Any], attribute: str, q: float) -> dict[str, float]:
    """Each path's `q`th percentile of `attribute`."""
    return {path: percentile(getattr(figures[path], attribute), q) for path in figures}


def _added_p50(figures: dict[str, Any], attribute: str) -> float:
    """toolwire's p50 of `attribute` minus the direct SDK's."""
    return percentile(getattr(figures["toolwire"], attribute), 50) - percentile(
        getattr(figures["direct"], attribute), 50
    )


def _mean(flat: dict[str, Any], path: str, key: str) -> float:
    values = [run[key] for run in flat.get(path, [])]
    return sum(values) / len(values) if values else float("nan")


def build(results: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """docs/performance.md's generated section, and the rows (for the verdicts)."""
    rows = _Rows(results["paths"])
    one_stream = _latency_rows(rows, results)
    _delivery_rows(rows, results)
    _throughput_rows(rows, results)
    _concurrency_rows(rows, results, one_stream)
    _memory_and_peer_rows(rows, results)
    _startup_rows(rows, results)
    _probe_rows(rows, results)
    return _render(rows, results), {"rows": rows}


def _latency_rows(rows: _Rows, results: dict[str, Any]) -> dict[str, float]:
    """TTFT, gap and tool round trip rows; returns the direct SDK's one-stream p99s (TTFT, gap), the
    floor the concurrency rows are measured against."""
    single = results["single"]
    first = results.get("first_token") or single  # runs before it measured TTFT on `single`
    tool = results["tool"]
    burst = results["burst"]
    one = {
        "ttft_ms": percentile(first["direct"].ttft_ms, 99),
        "gap_jitter_ms": percentile(single["direct"].gap_jitter_ms, 99),
    }
    chats = f"; {len(first['direct'].ttft_ms)} chats"
    floor_note = "; added vs direct at 1 stream"
    go = results.get("go") or {}
    consumer_note = "; Python consumer" if go else ""
    concurrency_bar = (lambda bar: None) if go else (lambda bar: bar)  # then judged on the Go rows
    rows.added(f"TTFT p50, 1 stream (ms{chats})", _each(first, "ttft_ms", 50), 0.5)
    rows.added(
        f"TTFT p99, 1 stream (ms{chats})", _each(first, "ttft_ms", 99), 2, also=_added_p50(first, "ttft_ms")
    )
    if 100 in burst:
        rows.added("TTFT p50, 100 streams (ms)", _each(burst[100], "ttft_ms", 50), None)
        rows.added(f"TTFT p99, 100 streams (ms{floor_note}{consumer_note})", _each(burst[100], "ttft_ms", 99),
                   concurrency_bar(5), floor=one["ttft_ms"])  # fmt: skip
    rows.added("chunk delivery lag p50, 1 stream (ms)", _each(single, "lag_ms", 50), None)
    rows.added("chunk delivery lag p99, 1 stream (ms)", _each(single, "lag_ms", 99), None)
    rows.added("gap between chunks − sent gap, p99, 1 stream (ms)", _each(single, "gap_jitter_ms", 99), 1)
    if 200 in burst:
        rows.added(
            f"gap between chunks − sent gap, p99, 200 streams (ms{floor_note}{consumer_note})",
            _each(burst[200], "gap_jitter_ms", 99),
            concurrency_bar(2),
            floor=one["gap_jitter_ms"],
        )
        rows.added("chunk delivery lag p99, 200 streams at 50/s (ms)", _each(burst[200], "lag_ms", 99), None)
    rows.added("last ToolResult → next request at provider, p50 (ms)", _each(tool, "tool_ms", 50), None)
    rows.added(
        f"last ToolResult → next request at provider, p99 (ms{consumer_note})",
        _each(tool, "tool_ms", 99),
        concurrency_bar(1),
        also=_added_p50(tool, "tool_ms"),
    )
    return one


def _delivery_rows(rows: _Rows, results: dict[str, Any]) -> None:
    """Chunks lost or reordered and streams failed, over every Python-consumer phase."""
    paths = results["paths"]
    lost = {path: float(sum(f.lost_or_reordered for f in _all_figures(results, path))) for path in paths}
    errors = {path: float(sum(len(f.errors) for f in _all_figures(results, path))) for path in paths}
    rows.plain("streams with a chunk lost or reordered", lost, "0", lost.get("toolwire", 1) == 0, 0)
    rows.plain("streams that failed", errors, "0", errors.get("toolwire", 1) == 0, 0)


def _throughput_rows(rows: _Rows, results: dict[str, Any]) -> None:
    """Flat-out chunks/s, CPU per chunk (relay, consumer, our own code) and chunks per message."""
    paths, flat = results["paths"], results["flat"]
    rate = {path: _mean(flat, path, "chunks_per_s") for path in paths}
    rows.plain("flat out, 4 streams: chunks/s", rate, "≥ 10,000/s per process", rate["toolwire"] >= 10000, 0)
    relay_cpu = {
        "toolwire": _mean(flat, "toolwire", "relay_cpu_us"),
        "litellm": _mean(flat, "litellm", "relay_cpu_us"),
        "direct": _mean(flat, "direct", "consumer_cpu_us"),
    }
    rows.plain("CPU µs per chunk: relay process (direct: the SDK consumer)", relay_cpu, "", None, 1)
    consumer_cpu = {path: _mean(flat, path, "consumer_cpu_us") for path in paths}
    rows.plain("CPU µs per chunk: the consumer process", consumer_cpu, "", None, 1)
    ours_share = results["profile"].get("ours: toolwire.server (+ jiter)", float("nan"))
    ours_profiled = ours_share * relay_cpu["toolwire"]
    if not math.isnan(ours_share):
        rows.lines.append(
            f"| CPU µs per chunk: our own code, profile share {ours_share:.0%} × relay CPU (an upper bound) "
            f"| | {_fmt(ours_profiled, 1)} | | | | | | |"
        )
    ours_us = results.get("micro", {}).get("openai, the whole loop", float("nan"))
    rows.lines.append(
        f"| CPU µs per chunk: our own code alone (adapter, loop, proto; `python -m bench.micro`) | | "
        f"**{_fmt(ours_us, 1)}** | | | | | | ≤ 25 µs {_mark(ours_us <= 25)} |"
    )
    rows.verdicts.append((f"our own code: {ours_us:.1f} µs per chunk (≤ 25)", "ours", ours_us <= 25))
    per_msg = {path: _mean(flat, path, "chunks_per_message") for path in paths}
    rows.plain("chunks per delivered message (coalescing)", per_msg, "", None, 2)


def _concurrency_rows(rows: _Rows, results: dict[str, Any], one_stream: dict[str, float]) -> None:
    """The sweep's top concurrency, then the Go load generator's bars and its lost/failed count."""
    sweep = results["sweep"]
    go = results.get("go") or {}
    floor = results.get("go_floor") or None
    top = max(sweep["toolwire"])
    sustained = {
        path: percentile(sweep[path][top].lag_ms, 99) if top in sweep[path] else float("nan")
        for path in sweep
    }
    rows.plain(
        f"delivery lag p99, {top} chats at 20 chunks/s (ms{'; Python consumer' if go else ''})",
        sustained,
        "" if go else "≤ 50 ms",
        None if go else sustained["toolwire"] <= 50,
        1,
    )
    if not go:
        return
    go_lines, go_verdicts = report_go.bars(go, one_stream["ttft_ms"], one_stream["gap_jitter_ms"], floor)
    rows.lines.extend(go_lines)
    rows.verdicts.extend(go_verdicts)
    go_lost, go_failed = report_go.lost_and_failed({**go, 0: floor} if floor else go)  # the floor too
    rows.verdicts.append(
        (f"Go load generator runs (the floor too): {go_lost} streams lost or reordered a chunk, "
         f"{go_failed} chats failed",
         "go-lost", go_lost == 0 and go_failed == 0)
    )  # fmt: skip


def _memory_and_peer_rows(rows: _Rows, results: dict[str, Any]) -> None:
    """Memory per chat waiting on a tool, and LiteLLM's added TTFT against toolwire's."""
    memory = results["memory_per_chat"] / 1024
    rows.lines.append(
        f"| server memory per chat waiting on a tool (KiB) | | **{memory:.1f}** | | | | | | < 64 KiB "
        f"{_mark(memory < 64)} |"
    )
    rows.verdicts.append((f"memory per parked chat: {memory:.1f} KiB (< 64)", "memory", memory < 64))
    if "litellm" not in results["paths"]:
        return
    first = results.get("first_token") or results["single"]
    added_tw = _added_p50(first, "ttft_ms")
    added_ll = percentile(first["litellm"].ttft_ms, 50) - percentile(first["direct"].ttft_ms, 50)
    rows.verdicts.append(
        (
            f"LiteLLM adds {added_ll:.2f} ms TTFT p50, toolwire {added_tw:.2f} ms (bar: ≥ 10× less)",
            "ll",
            added_ll >= 10 * added_tw,
        )
    )


def _profile_section(results: dict[str, Any]) -> str:
    if not results["profile"]:
        return "**Where the server's CPU goes**: the profiled run came out empty this time."
    profile = "\n".join(f"| {name} | {share:.1%} |" for name, share in results["profile"].items())
    top_functions = "\n".join(
        f"| `{where}` | {seconds * 1e3:.0f} | {calls:,} |"
        for where, seconds, calls in results["profile_top"][:20]
    )
    profiled = results["profiled"] or {"chunks_per_s": float("nan"), "relay_cpu_us": float("nan")}
    return PROFILE_TEMPLATE.format(profiled=profiled, profile=profile, top_functions=top_functions)


def _startup_rows(rows: _Rows, results: dict[str, Any]) -> None:
    """A server's start-up per set of provider keys (bench/startup.py; runs before it had none)."""
    rounds = results.get("startup_rounds", 0)
    for keys, figures in (results.get("startup") or {}).items():
        rows.lines.append(
            f"| server start to `listening` with {keys} (s / MiB resident then; median of {rounds}) "
            f"| | {_fmt(figures['seconds'])} s / {figures['rss_mib']:.0f} MiB | | | | | | |"
        )


def _probe_rows(rows: _Rows, results: dict[str, Any]) -> None:
    """What a health probe costs the pod, exec against kubelet's gRPC probe (bench/probes.py; runs
    before session 10 had none)."""
    probes = results.get("probes")
    if not probes:
        return
    exec_probe, grpc_probe, rounds = probes["exec"], probes["grpc"], probes["rounds"]
    exec_ms = exec_probe["probe_ms"] + exec_probe["server_ms"]
    grpc_ms = grpc_probe["server_ms"]
    per_second = probes["probes_per_second"]
    rows.lines += [
        f"| health probe, exec `toolwire health` over the socket: CPU in the pod per probe (ms: the "
        f"probe's process + the server; median of {rounds} rounds of {probes['exec_batch']}) "
        f"| | {_fmt(exec_ms, 1)} ({_fmt(exec_probe['probe_ms'], 1)} + {_fmt(exec_probe['server_ms'])}) "
        "| | | | | | |",
        f"| health probe, kubelet's gRPC probe on `--health-listen`: CPU in the pod per probe (ms: the "
        f"server; grpc-health-probe stands in for kubelet; median of {rounds} rounds of "
        f"{probes['grpc_batch']}) | | {_fmt(grpc_ms)} | | | | | | |",
        f"| health probes at deploy/kubernetes' readiness and liveness periods ({per_second:g} a second): "
        f"CPU in the pod (millicores), exec and gRPC | | {_fmt(exec_ms * per_second, 1)} and "
        f"{_fmt(grpc_ms * per_second)} ({_ratio(exec_ms, grpc_ms)} less) | | | | | | |",
    ]
    docker_per_second = probes.get("docker_probes_per_second")
    if docker_per_second:  # runs before session 13 did not measure it
        probe_ms, server_ms = grpc_probe["probe_ms"], grpc_probe["server_ms"]
        docker_ms = probe_ms + server_ms
        rows.lines.append(
            f"| Docker's HEALTHCHECK, grpc-health-probe in the container every {1 / docker_per_second:g} s: "
            f"CPU in the container per probe (ms: the probe's process + the server) and millicores, "
            f"against `toolwire health` in its place | | {_fmt(docker_ms, 1)} ({_fmt(probe_ms, 1)} + "
            f"{_fmt(server_ms)}), {_fmt(docker_ms * docker_per_second)} against "
            f"{_fmt(exec_ms * docker_per_second, 1)} ({_ratio(exec_ms, docker_ms)} less) | | | | | | |"
        )


def _render(rows: _Rows, results: dict[str, Any]) -> str:
    header = (
        "| figure | direct SDK | toolwire | LiteLLM | toolwire added | LiteLLM added | toolwire ÷ direct "
        "| LiteLLM ÷ toolwire (added) | bar |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    machine = results["machine"]
    load = f"load average {results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} after"
    versions = ", ".join(f"{name} {version}" for name, version in results["versions"].items())
    verdicts = "\n".join(f"- {_mark(holds)} {text}" for text, _, holds in rows.verdicts)
    quick = " **Quick run (BENCH_QUICK=1): few samples.**" if results["quick"] else ""
    go_section = report_go.section(
        results.get("go") or {}, results.get("go_floor") or None, int(machine["nproc"])
    )
    return f"""{BEGIN}

Machine: {machine["nproc"]} cores, {machine["cpu"]}, {machine["memory"]}, Linux {machine["kernel"]},
Python {machine["python"]}. Versions: {versions}.{quick}
Everything on one machine: the fake provider, the relay (toolwire or LiteLLM) and the consumer
share the {machine["nproc"]} cores ({load}: other work on the machine adds noise).
Latencies in ms; "added" is the path's figure minus the direct SDK's.

{header}
{chr(10).join(rows.lines)}

**The bars:**

{verdicts}

**Delivery lag against concurrency** (every chat streams 60 chunks 50 ms apart, all started at
once; lag = arrival at the consumer − send time at the provider; ms). Python consumers, interleaved:

{_sweep_table(results["sweep"])}

{go_section}

![delivery lag p99 against concurrent chats](performance-lag.png)

{_profile_section(results)}

{END}"""


PROFILE_TEMPLATE = """**Where the server's CPU goes** (cProfile of the server's main thread, self time,
4 streams × 2000 chunks flat out; cProfile slows Python code more than C, so these are shares, not µs.
Under the profiler: {profiled[chunks_per_s]:,.0f} chunks/s, {profiled[relay_cpu_us]:.0f} µs CPU per chunk):

| where | share of the server's busy time |
|---|---:|
{profile}

| function (self time) | ms | calls |
|---|---:|---:|
{top_functions}"""


def _all_figures(results: dict[str, Any], path: str) -> list[Any]:
    out = [results["single"].get(path), results.get("first_token", {}).get(path), results["tool"].get(path)]
    out += [burst.get(path) for burst in results["burst"].values()]
    out += list(results["sweep"].get(path, {}).values())
    return [f for f in out if f is not None]


def _sweep_table(sweep: dict[str, dict[int, Any]]) -> str:
    counts = sorted({n for path in sweep.values() for n in path})
    head = "| chats | " + " | ".join(f"{path} p50 | {path} p99" for path in sweep) + " |"
    rule = "|---:|" + "---:|" * (2 * len(sweep))
    lines = [head, rule]
    for n in counts:
        cells = []
        for path in sweep:
            figures = sweep[path].get(n)
            lags = figures.lag_ms if figures else []
            failed = f" ({len(figures.errors)} failed)" if figures and figures.errors else ""
            cells.append(f"{_fmt(percentile(lags, 50))} | {_fmt(percentile(lags, 99))}{failed}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(
    sweep: dict[str, dict[int, Any]],
    path: Path,
    more: dict[str, dict[int, tuple[float, float]]],
    cores: int,
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axes = plt.subplots(figsize=(10, 4.6), dpi=110)
    for name, points in sweep.items():
        counts = sorted(points)
        for q, style in ((99, "-o"), (50, ":.")):
            axes.plot(
                counts,
                [max(0.01, percentile(points[n].lag_ms, q)) for n in counts],
                style,
                label=f"{name} p{q}",
            )
    for name, by_count in more.items():
        counts = sorted(by_count)
        for index, style in ((1, "-s"), (0, ":x")):
            axes.plot(
                counts,
                [max(0.01, by_count[n][index]) for n in counts],
                style,
                label=f"{name} p{99 if index else 50}",
            )
    axes.axhline(50, color="grey", linewidth=0.8, linestyle="--", label="bar: p99 50 ms")
    axes.set_yscale("log")
    axes.set_xlabel("concurrent chats, 20 chunks/s each")
    axes.set_ylabel("delivery lag, ms (log)")
    axes.set_title(f"Chunk delivery lag against concurrency ({cores} cores, loopback)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the plot, not over it
    figure.tight_layout()
    figure.savefig(path)


def write(results: dict[str, Any], docs: Path) -> None:
    text, _ = build(results)
    print(text)
    target = docs / "performance.md"
    if target.exists():
        current = target.read_text()
        if BEGIN in current and END in current:
            before, rest = current.split(BEGIN, 1)
            after = rest.split(END, 1)[1]
            target.write_text(before + text + after)
        else:
            target.write_text(current.rstrip() + "\n\n" + text + "\n")
    else:
        target.write_text("# Performance\n\n" + text + "\n")
    _plot(
        results["sweep"],
        docs / "performance-lag.png",
        report_go.plot_points(results.get("go") or {}, results.get("go_floor")),
        int(results["machine"]["nproc"]),
    )
    raw = {
        key: value
        for key, value in results.items()
        if key in ("machine", "versions", "flat", "profile", "memory_per_chat", "profiled")
    }
    (Path(__file__).parent / "last-run.json").write_text(json.dumps(raw, indent=2, default=str))

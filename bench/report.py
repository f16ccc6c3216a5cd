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
            f"| {_ratio(tw, direct)} | {_ratio(ll_added, tw_added)} | "
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


def _fig(results: dict[str, Any], key: str) -> dict[str, Any]:
    return results[key]


def build(results: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    paths = results["paths"]
    rows = _Rows(paths)
    single = results["single"]
    first = results.get("first_token") or single  # runs before it measured TTFT on `single`
    tool = results["tool"]
    burst = results["burst"]
    sweep = results["sweep"]
    flat = results["flat"]
    cores = int(results["machine"]["nproc"])

    def each(figures: dict[str, Any], attribute: str, q: float) -> dict[str, float]:
        return {path: percentile(getattr(figures[path], attribute), q) for path in figures}

    def added_p50(figures: dict[str, Any], attribute: str) -> float:
        return percentile(getattr(figures["toolwire"], attribute), 50) - percentile(
            getattr(figures["direct"], attribute), 50
        )

    one = {
        "ttft_ms": percentile(first["direct"].ttft_ms, 99),
        "gap_jitter_ms": percentile(single["direct"].gap_jitter_ms, 99),
    }
    chats = f"; {len(first['direct'].ttft_ms)} chats"
    floor_note = "; added vs direct at 1 stream"
    go = results.get("go") or {}
    floor = results.get("go_floor") or None
    consumer_note = "; Python consumer" if go else ""
    concurrency_bar = (lambda bar: None) if go else (lambda bar: bar)  # then judged on the Go rows
    rows.added(f"TTFT p50, 1 stream (ms{chats})", each(first, "ttft_ms", 50), 0.5)
    rows.added(
        f"TTFT p99, 1 stream (ms{chats})", each(first, "ttft_ms", 99), 2, also=added_p50(first, "ttft_ms")
    )
    if 100 in burst:
        rows.added("TTFT p50, 100 streams (ms)", each(burst[100], "ttft_ms", 50), None)
        rows.added(f"TTFT p99, 100 streams (ms{floor_note}{consumer_note})", each(burst[100], "ttft_ms", 99),
                   concurrency_bar(5), floor=one["ttft_ms"])  # fmt: skip
    rows.added("chunk delivery lag p50, 1 stream (ms)", each(single, "lag_ms", 50), None)
    rows.added("chunk delivery lag p99, 1 stream (ms)", each(single, "lag_ms", 99), None)
    rows.added("gap between chunks − sent gap, p99, 1 stream (ms)", each(single, "gap_jitter_ms", 99), 1)
    if 200 in burst:
        rows.added(
            f"gap between chunks − sent gap, p99, 200 streams (ms{floor_note}{consumer_note})",
            each(burst[200], "gap_jitter_ms", 99),
            concurrency_bar(2),
            floor=one["gap_jitter_ms"],
        )
        rows.added("chunk delivery lag p99, 200 streams at 50/s (ms)", each(burst[200], "lag_ms", 99), None)
    rows.added("last ToolResult → next request at provider, p50 (ms)", each(tool, "tool_ms", 50), None)
    rows.added(
        f"last ToolResult → next request at provider, p99 (ms{consumer_note})",
        each(tool, "tool_ms", 99),
        concurrency_bar(1),
        also=added_p50(tool, "tool_ms"),
    )

    lost = {path: float(sum(f.lost_or_reordered for f in _all_figures(results, path))) for path in paths}
    errors = {path: float(sum(len(f.errors) for f in _all_figures(results, path))) for path in paths}
    rows.plain("streams with a chunk lost or reordered", lost, "0", lost.get("toolwire", 1) == 0, 0)
    rows.plain("streams that failed", errors, "0", errors.get("toolwire", 1) == 0, 0)

    def mean(path: str, key: str) -> float:
        values = [run[key] for run in flat.get(path, [])]
        return sum(values) / len(values) if values else float("nan")

    rate = {path: mean(path, "chunks_per_s") for path in paths}
    rows.plain("flat out, 4 streams: chunks/s", rate, "≥ 10,000/s per process", rate["toolwire"] >= 10000, 0)
    relay_cpu = {
        "toolwire": mean("toolwire", "relay_cpu_us"),
        "litellm": mean("litellm", "relay_cpu_us"),
        "direct": mean("direct", "consumer_cpu_us"),
    }
    rows.plain("CPU µs per chunk: relay process (direct: the SDK consumer)", relay_cpu, "", None, 1)
    consumer_cpu = {path: mean(path, "consumer_cpu_us") for path in paths}
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
    per_msg = {path: mean(path, "chunks_per_message") for path in paths}
    rows.plain("chunks per delivered message (coalescing)", per_msg, "", None, 2)

    top = max(sweep["toolwire"])
    sustained = {
        path: percentile(sweep[path][top].lag_ms, 99) if top in sweep[path] else float("nan")
        for path in sweep
    }
    rows.plain(
        f"delivery lag p99, {top} chats at 20 chunks/s (ms{consumer_note})",
        sustained,
        "" if go else "≤ 50 ms",
        None if go else sustained["toolwire"] <= 50,
        1,
    )
    if go:
        go_lines, go_verdicts = report_go.bars(go, one["ttft_ms"], one["gap_jitter_ms"], floor)
        rows.lines.extend(go_lines)
        rows.verdicts.extend(go_verdicts)
        go_lost, go_failed = report_go.lost_and_failed({**go, 0: floor} if floor else go)  # the floor too
        rows.verdicts.append(
            (f"Go load generator runs (the floor too): {go_lost} streams lost or reordered a chunk, "
             f"{go_failed} chats failed",
             "go-lost", go_lost == 0 and go_failed == 0)
        )  # fmt: skip
    memory = results["memory_per_chat"] / 1024
    rows.lines.append(
        f"| server memory per chat waiting on a tool (KiB) | | **{memory:.1f}** | | | | | | < 64 KiB "
        f"{_mark(memory < 64)} |"
    )
    rows.verdicts.append((f"memory per parked chat: {memory:.1f} KiB (< 64)", "memory", memory < 64))

    if "litellm" in paths:
        added_tw = added_p50(first, "ttft_ms")
        added_ll = percentile(first["litellm"].ttft_ms, 50) - percentile(first["direct"].ttft_ms, 50)
        ok = added_ll >= 10 * added_tw
        rows.verdicts.append(
            (
                f"LiteLLM adds {added_ll:.2f} ms TTFT p50, toolwire {added_tw:.2f} ms (bar: ≥ 10× less)",
                "ll",
                ok,
            )
        )

    header = (
        "| figure | direct SDK | toolwire | LiteLLM | toolwire added | LiteLLM added | toolwire ÷ direct "
        "| LiteLLM ÷ toolwire (added) | bar |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    sweep_table = _sweep_table(sweep)
    go_table = (
        "**The same with the Go load generator, at steady load** (bench/loadgen; toolwire with each "
        "process count, `--workers`, and the floor run at once, each scenario on all of them back to back "
        "in a shuffled order; 8 connections; the first run of each scenario; the streams start spread "
        "over one chat's 3 s, each "
        "runs 3 chats, the first left out, so the figures cover all N streaming at once; server CPU is "
        "the whole process tree's, idle time included, per chunk relayed; *floor* is bench/floor_server.py, "
        "grpc.aio + aiohttp relaying the same stream with no logic at all):\n\n"
        + report_go.sweep_table(go, floor)
        + ("\n\n" + report_go.capacity(floor, cores) if floor else "")
        + (
            "\n\n**The client-chosen window** (`ChatStart.text_coalesce_window`, 1 process): the "
            "first text of a model round goes out at once, later text is held up to the window and "
            "sent as one message; the same scenario without it beside each:\n\n" + report_go.window_table(go)
            if report_go.window_table(go)
            else ""
        )
        if go
        else "The Go load generator phase did not run (no Go toolchain, or its build failed)."
    )
    profile = "\n".join(f"| {name} | {share:.1%} |" for name, share in results["profile"].items())
    top_functions = "\n".join(
        f"| `{where}` | {seconds * 1e3:.0f} | {calls:,} |"
        for where, seconds, calls in results["profile_top"][:20]
    )
    machine = results["machine"]
    load = f"load average {results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} after"
    versions = ", ".join(f"{name} {version}" for name, version in results["versions"].items())
    verdicts = "\n".join(f"- {_mark(holds)} {text}" for text, _, holds in rows.verdicts)
    profiled = results["profiled"] or {"chunks_per_s": float("nan"), "relay_cpu_us": float("nan")}
    profile_section = (
        PROFILE_TEMPLATE.format(profiled=profiled, profile=profile, top_functions=top_functions)
        if results["profile"]
        else "**Where the server's CPU goes**: the profiled run came out empty this time."
    )
    quick = " **Quick run (BENCH_QUICK=1): few samples.**" if results["quick"] else ""
    text = f"""{BEGIN}

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

{sweep_table}

{go_table}

![delivery lag p99 against concurrent chats](performance-lag.png)

{profile_section}

{END}"""
    return text, {"rows": rows}


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

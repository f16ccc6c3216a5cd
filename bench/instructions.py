"""Instructions per relayed paced chunk and per chat, counted by valgrind: `make bench-instructions`.

CPU time on this shared 2-core machine moves by ±20% between runs of the same commit, so an A/B of a
change worth 5% needs many interleaved runs (docs/performance.md). Instructions executed barely
move: each server runs under callgrind, counting only while the Go load generator drives it, and the
count over the same load repeats within 1-3% (runs of the same commit here). One run per side shows a
change of 5% or more.

The figures are the instructions of the server process (every thread: the event loop, gRPC's
pollers) in user space: not the kernel's work in sockets, nor cache misses. They rank changes to
Python code well and say nothing about syscalls. Each server (toolwire, and the floor of
bench/floor_server.py) runs two loads after a warm-up:

    paced   STREAMS chats of CHUNKS text chunks 50 ms apart (20 chunks/s each, as the sweep)
    chats   CHATS one-chunk chats, one after another

The per-chat cost is taken out of the paced figure, so "per chunk" is the relay of one chunk alone.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.processes import BENCH, start, stop, toolwire_config

STREAMS = 2
CHUNKS = 200
CHATS = 20
VALGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
ENVIRONMENT = {"OPENAI_API_KEY": "sk-bench", "OTEL_SDK_DISABLED": "true"}


@dataclass(frozen=True)
class Count:
    """Instructions counted over one load."""

    instructions: int
    items: int
    """Chunks relayed (paced) or chats (chats)."""

    @property
    def per_item(self) -> float:
        return self.instructions / self.items


def counted_instructions(dump: str) -> int:
    """The instructions of a callgrind dump made by `callgrind_control --dump`: its `totals:` line,
    the sum of its costs. (Its `summary:` line is wrong after instrumentation was turned off and on
    again: valgrind 3.19 writes a wrapped-around negative there.)"""
    match = re.search(r"^totals: (\d+)$", dump, re.MULTILINE)
    if match is None:
        raise ValueError("not a callgrind dump: no totals line")
    return int(match[1])


def per_chunk(paced: Count, chats: Count, chats_in_paced: int) -> float:
    """Instructions per relayed chunk, the cost of the paced load's chats taken out."""
    return (paced.instructions - chats_in_paced * chats.per_item) / paced.items


def _measure(server: list[str], binary: Path, pattern: str, output: Path) -> tuple[Count, Count]:
    command = [*VALGRIND, f"--callgrind-out-file={output}", *server]
    process, address = start(command, pattern, ENVIRONMENT, timeout=300)
    try:
        _load(binary, address, "openai/bench-20x50ms", STREAMS, 2)  # warm-up: imports, connections, caches
        counts = []
        for model, streams, rounds in (
            (f"openai/bench-{CHUNKS}x50ms", STREAMS, 1),
            ("openai/bench-1x0ms", 1, CHATS),
        ):
            _control("--instr=on", process.pid)
            result = _load(binary, address, model, streams, rounds)
            _control("--dump", process.pid)
            _control("--instr=off", process.pid)
            dump = output.with_name(f"{output.name}.{len(counts) + 1}")  # callgrind numbers its dumps
            counts.append(Count(counted_instructions(dump.read_text()), int(result["chunks"])))
        return counts[0], counts[1]
    finally:
        stop(process)


def _load(binary: Path, address: str, model: str, streams: int, rounds: int) -> dict[str, Any]:
    done = subprocess.run(
        [str(binary), "-target", address, "-model", model, "-streams", str(streams), "-rounds", str(rounds)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    if result["failed"]["count"] or result["lost_or_reordered"]:
        raise RuntimeError(f"the load failed under valgrind: {done.stdout}")
    return result


def _control(option: str, pid: int) -> None:
    subprocess.run(["callgrind_control", option, str(pid)], capture_output=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("servers", nargs="*", help="toolwire, floor, or both (the default)")
    servers = parser.parse_args().servers or ["toolwire", "floor"]
    if not set(servers) <= {"toolwire", "floor"}:
        parser.error(f"unknown server in {servers}: name toolwire, floor or both")
    if shutil.which("callgrind_control") is None:
        sys.exit(
            "bench.instructions needs valgrind: apt-get install valgrind (`make bench-instructions` does)"
        )
    binary = loadgen.build()
    fake, fake_port = start([sys.executable, str(BENCH / "fake_provider.py")], r"listening on (\d+)")
    try:
        with tempfile.TemporaryDirectory() as folder:
            directory = Path(folder)
            commands = {
                "toolwire": [sys.executable, "-m", "toolwire.server", "serve", "--config",
                             str(toolwire_config(directory, int(fake_port))), "--listen", "127.0.0.1:0",
                             "--log-level", "warning"],
                "floor": [sys.executable, str(BENCH / "floor_server.py"), fake_port],
            }  # fmt: skip
            for name in servers:
                paced, chats = _measure(
                    commands[name], binary, r"listening on (\S+)", directory / f"{name}.out"
                )
                print(f"{name}: {per_chunk(paced, chats, STREAMS):,.0f} instructions per paced chunk, "
                      f"{chats.per_item:,.0f} per one-chunk chat", flush=True)  # fmt: skip
    finally:
        stop(fake)


if __name__ == "__main__":
    main()

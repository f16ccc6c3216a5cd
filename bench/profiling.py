"""The split of a cProfile'd server run (bench/profiled_server.py) by where the code lives, and its
top functions by self time, for the report."""

from __future__ import annotations

import pstats
from collections import defaultdict
from pathlib import Path


def profile_split(path: Path) -> dict[str, float]:
    """Self time of the server's main thread by where the code lives, as shares of the total."""
    stats = pstats.Stats(str(path))
    groups: dict[str, float] = defaultdict(float)
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        groups[_group(filename, function)] += tottime
    groups.pop("idle (epoll wait)", None)
    total = sum(groups.values())
    return {name: value / total for name, value in sorted(groups.items(), key=lambda kv: -kv[1])}


def _group(filename: str, function: str) -> str:
    if filename == "~":
        if "poll" in function or "select" in function:
            return "idle (epoll wait)"
        if "jiter" in function or "from_json" in function:
            return "ours: toolwire.server (+ jiter)"
        if "_cython" in function or "cygrpc" in function or "grpc" in function:
            return "grpc (aio Cython, awaited in servicer.py)"
        return "builtins (str/bytes/protobuf C)"
    if filename.endswith("/toolwire/server/servicer.py"):
        return "grpc (aio Cython, awaited in servicer.py)"  # context.read/write: Cython coroutines
    if "/toolwire/server/" in filename:
        return "ours: toolwire.server (+ jiter)"
    if "/toolwire/v1/" in filename or "/google/protobuf/" in filename:
        return "builtins (str/bytes/protobuf C)"
    for key, name in (
        ("/openai/", "SDK: openai"),
        ("/anthropic/", "SDK: anthropic"),
        ("/aiohttp/", "HTTP: aiohttp (+ multidict, yarl)"),
        ("/multidict/", "HTTP: aiohttp (+ multidict, yarl)"),
        ("/yarl/", "HTTP: aiohttp (+ multidict, yarl)"),
        ("/grpc/", "grpc (aio Cython, awaited in servicer.py)"),
        ("/asyncio/", "asyncio event loop"),
        ("/opentelemetry/", "opentelemetry (no-op)"),
    ):
        if key in filename:
            return name
    return "other"


def top(path: Path, count: int = 25) -> list[tuple[str, float, int]]:
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, function), (_, calls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "poll" in function:
            continue
        where = filename.split("site-packages/")[-1].split("/server/toolwire/")[-1]
        rows.append((f"{where}:{line}({function})", tottime, calls))
    return sorted(rows, key=lambda row: -row[1])[:count]

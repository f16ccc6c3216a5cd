"""`make soak`: a few minutes of hundreds of concurrent chats against a real `toolwire serve`, with tool
rounds, client cancels, provider faults and slow consumers; then the server must be back where it
started (tests/endurance/soak.py says what is checked). Exits 1 when a check fails.

    SOAK_SECONDS=180 SOAK_CONCURRENCY=300 .venv/bin/python soak/run.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.endurance.soak import SoakConfig, main

if __name__ == "__main__":
    seconds = float(os.environ.get("SOAK_SECONDS", "180"))
    config = SoakConfig(
        seconds=seconds,
        concurrency=int(os.environ.get("SOAK_CONCURRENCY", "300")),
        warmup_seconds=min(20.0, max(3.0, seconds / 8)),
        seed=int(os.environ.get("SOAK_SEED", "6")),
    )
    sys.exit(main(config))

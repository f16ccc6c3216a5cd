"""`make demo`: start a toolwire server on a free port, run the weather example against it, stop it."""

from __future__ import annotations

import asyncio
import pathlib
import signal
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import weather


def main() -> int:
    toolwire = pathlib.Path(sys.executable).parent / "toolwire"
    server = subprocess.Popen(
        [toolwire, "serve", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("toolwire listening on "):
            print(f"the server did not start: {line!r}", file=sys.stderr)
            return 1
        target = line.removeprefix("toolwire listening on ").strip()
        print(f"server on {target}\n")
        finish = asyncio.run(weather.main(target, "scripted/weather"))
        return 0 if finish.reason == "stop" else 1
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())

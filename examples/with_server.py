"""Run one command against a fresh toolwire server: `python examples/with_server.py COMMAND...`.

Starts `toolwire serve` on a free loopback port, runs COMMAND with TOOLWIRE_TARGET set to that
address, stops the server with SIGTERM and exits with the command's exit code. `make demo`,
`make demo-go` and `make demo-typescript` use it so each example runs with one command.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

PREFIX = "toolwire listening on "


def main(command: list[str]) -> int:
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    toolwire = pathlib.Path(sys.executable).parent / "toolwire"
    server = subprocess.Popen(
        [toolwire, "serve", "--listen", "127.0.0.1:0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith(PREFIX):
            print(f"the server did not start: {line!r}", file=sys.stderr)
            return 1
        target = line.removeprefix(PREFIX).strip()
        print(f"server on {target}\n", flush=True)
        return subprocess.call(command, env={**os.environ, "TOOLWIRE_TARGET": target})
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

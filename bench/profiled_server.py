"""`toolwire serve` with cProfile ready: `python bench/profiled_server.py OUT.prof serve ARGS...`.

PROFILE_START (SIGRTMIN+1) starts profiling, PROFILE_STOP (SIGRTMIN+2) stops it and writes OUT.prof,
so the profile covers the measured window only (not start-up imports). Not SIGUSR1: the server
itself answers that one (it logs the tasks alive), which took it from the profiler. It covers the
server's main thread: the asyncio loop with our code, the HTTP transport (aiohttp) and grpc.aio's
Python layer; time inside grpc's Cython coroutines is counted as the self time of the Python
function awaiting them.
"""

import cProfile
import signal
import sys

from toolwire.server.cli import main

PROFILE_START = signal.SIGRTMIN + 1
PROFILE_STOP = signal.SIGRTMIN + 2

if __name__ == "__main__":
    output, arguments = sys.argv[1], sys.argv[2:]
    profiler = cProfile.Profile()

    def stop(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(output)

    signal.signal(PROFILE_START, lambda *_: profiler.enable())
    signal.signal(PROFILE_STOP, stop)
    sys.exit(main(arguments))

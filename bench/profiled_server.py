"""`toolwire serve` with cProfile ready: `python bench/profiled_server.py OUT.prof serve ARGS...`.

SIGUSR1 starts profiling, SIGUSR2 stops it and writes OUT.prof, so the profile covers the measured
window only (not start-up imports). It covers the server's main thread: the asyncio loop with our
code, the SDK's HTTP transport and grpc.aio's Python layer; time inside grpc's Cython coroutines is
counted as the self time of the Python function awaiting them.
"""

import cProfile
import signal
import sys

from toolwire.server.cli import main

if __name__ == "__main__":
    output, arguments = sys.argv[1], sys.argv[2:]
    profiler = cProfile.Profile()

    def stop(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(output)

    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    signal.signal(signal.SIGUSR2, stop)
    sys.exit(main(arguments))

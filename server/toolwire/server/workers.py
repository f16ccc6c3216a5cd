"""Several server processes on one TCP port (`workers` > 1): a small supervisor, and its workers.

One Python process relays a few thousand chunks a second at most (grpc.aio costs ~80 µs per message),
so with `workers` = N `toolwire serve` does not serve itself. It binds each listen address (and each
health-only address, `health_listen`) once with SO_REUSEPORT, without listening: that picks the port
of a `host:0` address and keeps it reserved while the workers live. It then starts N workers
(`python -m toolwire.server.workers NUMBER`), each a normal server on those ports with SO_REUSEPORT
on, so that the kernel spreads new connections among them, and announces the addresses once, when
every worker listens.

`max_concurrent_chats` is the whole server's: the workers share one count of running chats
(chat_count.py), which the supervisor creates and resets for each worker it starts.

SIGTERM and SIGINT are forwarded to the workers, which drain as a single server does; the supervisor
exits 0 once all have ended. A worker that dies is logged and started again after a backoff; when
workers keep dying right after they start (a start-up error), the supervisor stops them all and exits
non-zero. A worker reads its settings from its standard input and keeps that pipe open: when it
closes, the supervisor is gone (even killed), and the worker stops as on SIGTERM. No worker outlives
its supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import pickle
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

from toolwire.server.addresses import parse_address
from toolwire.server.chat_count import ChatCountFile, create_count_file, zero_count
from toolwire.server.settings import ServerSettings

log = logging.getLogger(__name__)

ANNOUNCE = "toolwire listening on "
"""How a server's announce lines start (app.serve prints one per address once it listens)."""
HEALTH_ANNOUNCE = "toolwire health checks on "
"""How the announce line of a health-only address (`health_listen`) starts; after the others."""

EXIT_GAVE_UP = 1
"""Exit code when workers keep dying right after they start (after a first start that worked)."""
QUICK_EXIT_SECONDS = 10.0
"""A worker that ends sooner than this after it was ready died "right after start"."""
MOST_QUICK_EXITS = 5
"""Quick deaths in a row of one worker after which the supervisor gives up."""
STOP_MARGIN_SECONDS = 15.0
"""After SIGTERM, how long past the shutdown grace a worker may take before it is killed."""


def restart_delay(quick_exits: int) -> float | None:
    """Seconds to wait before starting a worker again after `quick_exits` quick deaths in a row
    (0: it had served a while); None: give up."""
    if quick_exits >= MOST_QUICK_EXITS:
        return None
    return min(0.5 * 2.0**quick_exits, 10.0)


PORT_ATTEMPTS = 20
"""Tries at one free port for every address a `host:0` resolves to, when another process takes it
between two binds."""


def reserve_ports(listen: Sequence[str]) -> tuple[list[socket.socket], tuple[str, ...]]:
    """Binds every (TCP) address of `listen` with SO_REUSEPORT, not listening; returns the sockets,
    to keep open while the workers live, and the addresses with the chosen ports. Raises OSError.

    A host that resolves to several addresses (`localhost` to 127.0.0.1 and ::1 on many machines) has
    each of them bound on one port, as gRPC binds them in the workers."""
    held: list[socket.socket] = []
    addresses: list[str] = []
    try:
        for text in listen:
            address = parse_address(text)
            if address.is_unix:  # nothing to reserve; settings refuse it with several workers
                addresses.append(address.grpc_target())
                continue
            holders = _reserve(address.host, address.port)
            held += holders
            addresses.append(address.grpc_target(holders[0].getsockname()[1]))
    except OSError:
        for each in held:
            each.close()
        raise
    return held, tuple(addresses)


def _reserve(host: str, port: int) -> list[socket.socket]:
    """One holder per address `host` resolves to, all on `port` (or on one free port for 0)."""
    target = f"{host}:{port}"
    try:
        resolved = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as error:
        raise OSError(f"could not listen on {target}: {error.strerror or error}") from None
    # (family, address without the port): an IPv6 address keeps its flow info and scope id
    places = list(dict.fromkeys((family, (str(where[0]), *where[2:])) for family, *_, where in resolved))
    for _ in range(PORT_ATTEMPTS if port == 0 and len(places) > 1 else 1):
        holders: list[socket.socket] = []
        try:
            for family, (where_host, *v6_rest) in places:
                chosen = holders[0].getsockname()[1] if holders else port
                holders.append(_bind_reusable(family, (where_host, chosen, *v6_rest)))
            return holders
        except OSError as error:
            for each in holders:
                each.close()
            taken_later = bool(holders) and port == 0 and error.errno == errno.EADDRINUSE
            if not taken_later:
                raise OSError(
                    f"could not listen on {target}: the address is in use or not available here"
                ) from None
    raise OSError(f"could not listen on {target}: no port was free on all of its {len(places)} addresses")


def _bind_reusable(family: int, where: tuple[Any, ...]) -> socket.socket:
    holder = socket.socket(family, socket.SOCK_STREAM)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(where)
    except OSError:
        holder.close()
        raise
    return holder


@dataclasses.dataclass
class Worker:
    """One worker process, numbered from 1."""

    number: int
    process: asyncio.subprocess.Process
    announced: list[str] = dataclasses.field(default_factory=list)
    """Its `toolwire listening on ...` and `toolwire health checks on ...` lines; all of them: it
    listens."""
    ready_at: float | None = None
    """When it announced (the loop's clock); None: not (yet) listening."""


class Supervisor:
    """Starts the workers, restarts one that dies, stops them all on SIGTERM or SIGINT."""

    def __init__(self, settings: ServerSettings, chat_counts: int) -> None:
        self.settings = settings
        self.chat_counts = chat_counts
        """The descriptor of the workers' shared chat counts (chat_count.py)."""
        self.workers: dict[int, Worker] = {}
        self.quick_exits: dict[int, int] = {}
        self.stopping = asyncio.Event()
        self.stop_signal = signal.SIGTERM
        self.command: tuple[str, ...] = (sys.executable, "-m", "toolwire.server.workers")
        """A worker's command line, before its number."""

    async def run(self) -> int:
        """Runs until the workers are stopped; returns the exit code."""
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, self._stop_on, signal_number)
        if hasattr(signal, "SIGUSR1"):  # each worker logs its own tasks
            loop.add_signal_handler(signal.SIGUSR1, self._forward, signal.SIGUSR1, True)
        failed = await self._start_all()
        if failed is not None and not self.stopping.is_set():
            code = max(failed.process.returncode or 0, 0) or EXIT_GAVE_UP  # killed by a signal: 1
            log.error("worker %d did not start (exit code %s): stopping", failed.number, code)
            await self._stop_all()
            return code
        if not self.stopping.is_set():
            print("\n".join(self.workers[1].announced), flush=True)
            pids = ", ".join(str(worker.process.pid) for worker in self.workers.values())
            log.info("%d workers serving on %s (pids %s)", len(self.workers), ", ".join(self.listen), pids)
        return await self._watch()

    async def _start_all(self) -> Worker | None:
        """Starts every worker; returns the first one that ended before it listened, else None."""
        numbers = range(1, self.settings.workers + 1)
        starts = [asyncio.ensure_future(self._start(number)) for number in numbers]
        try:
            for next_started in asyncio.as_completed(starts):
                worker = await next_started
                if worker.ready_at is None:
                    return worker
        finally:
            for start in starts:
                start.cancel()
            await asyncio.gather(*starts, return_exceptions=True)
        return None

    @property
    def listen(self) -> tuple[str, ...]:
        """The workers' addresses: the supervisor's, with the ports it chose."""
        return self.settings.listen

    async def _start(self, number: int) -> Worker:
        """Starts worker `number` and waits until it listens or ends."""
        zero_count(self.chat_counts, number - 1)  # the chats of a worker that died died with it
        process = await asyncio.create_subprocess_exec(
            *self.command,
            str(number),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            pass_fds=(self.chat_counts,),
        )
        worker = self.workers[number] = Worker(number, process)
        assert process.stdin is not None and process.stdout is not None
        count_file = ChatCountFile(self.chat_counts, number - 1, self.settings.workers)
        with contextlib.suppress(ConnectionError):  # it died at once: its exit code says why
            process.stdin.write(pickle.dumps(dataclasses.replace(self.settings, chat_count_file=count_file)))
            await process.stdin.drain()
        while len(worker.announced) < len(self.listen) + len(self.settings.health_listen):
            line = (await process.stdout.readline()).decode()
            if not line:
                await process.wait()
                return worker
            if line.startswith((ANNOUNCE, HEALTH_ANNOUNCE)):  # anything else printed there is not ours
                worker.announced.append(line.strip())
        worker.ready_at = asyncio.get_running_loop().time()
        return worker

    async def _watch(self) -> int:
        """Until a stop: restarts each worker that ends. Returns the exit code."""
        while not self.stopping.is_set():
            stop = asyncio.ensure_future(self.stopping.wait())
            exits = {asyncio.ensure_future(worker.process.wait()): worker for worker in self.workers.values()}
            done, pending = await asyncio.wait({stop, *exits}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done & exits.keys():
                if not self.stopping.is_set() and not await self._replace(exits[task]):
                    await self._stop_all()
                    return EXIT_GAVE_UP
        return 0 if await self._stop_all() else EXIT_GAVE_UP

    async def _replace(self, worker: Worker) -> bool:
        """Starts an ended worker again after a backoff; False: it keeps dying, give up."""
        assert worker.process.stdin is not None
        worker.process.stdin.close()
        now = asyncio.get_running_loop().time()
        quick = worker.ready_at is None or now - worker.ready_at < QUICK_EXIT_SECONDS
        quick_exits = self.quick_exits[worker.number] = (
            self.quick_exits.get(worker.number, 0) + 1 if quick else 0
        )
        delay = restart_delay(quick_exits)
        code = worker.process.returncode
        if delay is None:
            log.error("worker %d exited with code %s, %d times in a row right after start: giving up",
                      worker.number, code, quick_exits)  # fmt: skip
            return False
        log.warning("worker %d (pid %d) exited with code %s; starting it again in %.1f s",
                    worker.number, worker.process.pid, code, delay)  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay)
        if not self.stopping.is_set():
            started = await self._start(worker.number)
            log.info("worker %d started again (pid %d)", worker.number, started.process.pid)
        return True

    def _stop_on(self, signal_number: int) -> None:
        log.info("%s: stopping the workers", signal.Signals(signal_number).name)
        self.stop_signal = signal.Signals(signal_number)
        self.stopping.set()
        self._forward(signal_number)

    def _forward(self, signal_number: int, ready_only: bool = False) -> None:
        for worker in self.workers.values():
            if worker.process.returncode is None and (worker.ready_at is not None or not ready_only):
                _signal(worker.process, signal_number)

    async def _stop_all(self) -> bool:
        """Stops every worker still running (forced after the grace and a margin) and waits for it;
        True when each ended cleanly (exit code 0, or the stop signal before it could handle it)."""
        self._forward(self.stop_signal)
        processes = [worker.process for worker in self.workers.values()]
        limit = self.settings.shutdown_grace_seconds + STOP_MARGIN_SECONDS
        try:
            await asyncio.wait_for(asyncio.gather(*(process.wait() for process in processes)), limit)
        except TimeoutError:
            log.error("workers still running %.0f s after the stop: killing them", limit)
            for process in processes:
                if process.returncode is None:
                    _signal(process, signal.SIGKILL)
            await asyncio.gather(*(process.wait() for process in processes))
        for process in processes:
            assert process.stdin is not None
            process.stdin.close()
        return all(process.returncode in (0, -self.stop_signal) for process in processes)


def _signal(process: asyncio.subprocess.Process, signal_number: int) -> None:
    """Sends a signal to a worker by its pid. Not `process.send_signal`: subprocess.Popen polls the
    process before signalling it, and so reaps a worker that has just ended (the first of two stop
    signals, say) before asyncio's child watcher can; the watcher then reports exit code 255 for it
    ("Unknown child process"), and a clean stop looked failed (seen in ~1 test run in 20)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal_number)


async def supervise(settings: ServerSettings) -> int:
    """Runs `settings.workers` worker processes on the listen addresses; returns the exit code.
    Raises OSError when an address cannot be reserved."""
    held, addresses = reserve_ports((*settings.listen, *settings.health_listen))
    chosen = dataclasses.replace(
        settings, listen=addresses[: len(settings.listen)], health_listen=addresses[len(settings.listen) :]
    )
    try:
        chat_counts = create_count_file(settings.workers)
        try:
            return await Supervisor(chosen, chat_counts).run()
        finally:
            os.close(chat_counts)
    finally:
        for each in held:
            each.close()


def _stop_when_orphaned() -> None:
    """Waits for the supervisor's end of standard input to close, then stops this worker as SIGTERM
    does (it drains): the supervisor has exited, or was killed."""
    while os.read(sys.stdin.fileno(), 4096):  # unbuffered: no lock held at interpreter exit
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def worker_main(number: int) -> int:
    """A worker process: its settings from standard input, logs that name it, then a normal server."""
    from toolwire.server.cli import serve_settings
    from toolwire.server.logs import configure_logging

    settings: ServerSettings = pickle.load(sys.stdin.buffer)
    threading.Thread(target=_stop_when_orphaned, name="orphan-watch", daemon=True).start()
    configure_logging(settings, worker=number)
    return serve_settings(settings)


if __name__ == "__main__":
    sys.exit(worker_main(int(sys.argv[1])))

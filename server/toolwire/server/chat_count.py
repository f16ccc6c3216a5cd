"""The cap on concurrent chats across a server's worker processes (`workers` > 1, workers.py).

`max_concurrent_chats` is the whole server's cap, however many workers share its port: a gRPC client
sends all its chats over one connection, so the kernel hands them all to one worker, and a cap per
worker would either let the server run N times the chats it was given or refuse chats while other
workers are idle.

The supervisor creates a small unlinked file of one 8-byte count per worker, passes it to every worker
as an open descriptor, and zeroes a worker's count before it starts that worker (again, after it
died: the chats of a dead worker are gone, and so are their places). A worker writes only its own
count:

- to admit a chat it takes an exclusive record lock on the file (`fcntl.lockf`), adds up the counts,
  raises its own if the sum is under the cap, and unlocks: two system calls and a few microseconds,
  once per chat, never held across an `await`. The kernel drops the lock of a worker that dies.
- when the chat ends it lowers its own count without the lock: one writer, and another worker that
  reads the count meanwhile sees it before or after, so at worst it refuses a chat it could have
  taken a moment later.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import tempfile
from dataclasses import dataclass

COUNT_BYTES = 8
"""One worker's count: a signed 64-bit integer in the machine's byte order."""


@dataclass(slots=True, frozen=True)
class ChatCountFile:
    """Where a worker finds the server-wide count of running chats. Set by the supervisor in each
    worker's settings; never by users."""

    descriptor: int
    """The open file of the counts, the same number in the supervisor and every worker (pass_fds)."""
    slot: int
    """This worker's count, numbered from 0 (worker number - 1)."""
    slots: int
    """Counts in the file: the server's workers."""


def create_count_file(workers: int) -> int:
    """Creates the counts of `workers` workers, all 0, in an unlinked file; returns its descriptor
    (inheritable by the workers through `pass_fds`; the caller closes it)."""
    descriptor, path = tempfile.mkstemp(prefix="toolwire-chats-")
    os.unlink(path)
    os.ftruncate(descriptor, COUNT_BYTES * workers)
    return descriptor


def zero_count(descriptor: int, slot: int) -> None:
    """Sets worker `slot`'s count to 0 (the supervisor, before it starts that worker)."""
    os.pwrite(descriptor, bytes(COUNT_BYTES), COUNT_BYTES * slot)


class SharedChatCount:
    """One worker's view of the server-wide count of running chats (see the module doc)."""

    def __init__(self, where: ChatCountFile, cap: int) -> None:
        self.workers = where.slots
        self._descriptor = where.descriptor
        self._slot = where.slot
        self._cap = cap
        self._map = mmap.mmap(where.descriptor, COUNT_BYTES * where.slots)
        self._counts = memoryview(self._map).cast("q")

    @property
    def running(self) -> int:
        """Chats running on all the server's workers."""
        return sum(self._counts)

    def admit(self) -> int | None:
        """Counts one more chat of this worker if the server runs fewer than the cap: None. Otherwise
        counts nothing and returns how many run (the caller refuses the chat)."""
        fcntl.lockf(self._descriptor, fcntl.LOCK_EX)
        try:
            running = sum(self._counts)
            if running >= self._cap:
                return running
            self._counts[self._slot] += 1
            return None
        finally:
            fcntl.lockf(self._descriptor, fcntl.LOCK_UN)

    def release(self) -> None:
        """Counts one chat of this worker fewer (one that `admit` counted has ended)."""
        self._counts[self._slot] -= 1


def shared_chat_count(where: ChatCountFile | None, cap: int) -> SharedChatCount | None:
    """The worker's view of the server-wide count; None for a server of one process."""
    return None if where is None else SharedChatCount(where, cap)

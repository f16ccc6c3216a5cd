"""The outbox, with a fake write the test completes or fails one at a time: what goes out, merged how,
in which order, when `send` waits, where a failed write surfaces, and that nothing is left running."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from toolwire.server.chat_events import ChatEvent, TextOut, ToolRequestOut, UsageOut
from toolwire.server.errors import CallEnded
from toolwire.server.events import Usage
from toolwire.server.outbox import Outbox


class FakeWire:
    """A write coroutine that the test controls: each write waits until the test completes or fails it."""

    def __init__(self) -> None:
        self.started: list[ChatEvent] = []
        self.written: list[ChatEvent] = []
        self.cancelled = 0
        self._outcomes: asyncio.Queue[Exception | None] = asyncio.Queue()

    async def write(self, event: ChatEvent) -> None:
        self.started.append(event)
        try:
            outcome = await self._outcomes.get()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if outcome is not None:
            raise outcome
        self.written.append(event)

    def complete(self) -> None:
        """Lets the oldest write still waiting (or the next one to start) complete."""
        self._outcomes.put_nowait(None)

    def fail(self, error: Exception) -> None:
        """Makes the oldest write still waiting (or the next one to start) fail with `error`."""
        self._outcomes.put_nowait(error)


async def settle() -> None:
    """Lets every task that can run, run (a few loop iterations; no clock involved)."""
    for _ in range(10):
        await asyncio.sleep(0)


def texts(events: list[ChatEvent]) -> list[tuple[str, int]]:
    return [(event.text, event.round) for event in events if isinstance(event, TextOut)]


TOOL = ToolRequestOut("call-1", "get_weather", "{}", 1)
USAGE = UsageOut(1, Usage(input_tokens=3, output_tokens=4))


async def test_with_nothing_in_flight_each_event_is_written_at_once_and_alone():
    wire = FakeWire()
    outbox = Outbox(wire.write)
    await outbox.send(TextOut("Hel", 1))  # returns while its write is still in flight
    await settle()
    assert texts(wire.started) == [("Hel", 1)] and wire.written == []
    wire.complete()
    await settle()
    await outbox.send(TextOut("lo", 1))
    await settle()
    assert texts(wire.started) == [("Hel", 1), ("lo", 1)]
    wire.complete()
    await outbox.flush()
    assert texts(wire.written) == [("Hel", 1), ("lo", 1)]


async def test_text_queued_behind_a_write_in_flight_goes_out_as_one_message():
    wire = FakeWire()
    outbox = Outbox(wire.write)
    for text in ("The ", "sky ", "is ", "blue."):
        await outbox.send(TextOut(text, 1))
    await settle()
    assert texts(wire.started) == [("The ", 1)]
    wire.complete()
    await settle()
    assert texts(wire.started) == [("The ", 1), ("sky is blue.", 1)]
    await outbox.send(TextOut(" Yes.", 1))  # behind the merged write: queued again
    wire.complete()
    wire.complete()
    await outbox.flush()
    assert texts(wire.written) == [("The ", 1), ("sky is blue.", 1), (" Yes.", 1)]


async def test_another_event_waits_for_the_text_queued_before_it():
    wire = FakeWire()
    outbox = Outbox(wire.write)
    await outbox.send(TextOut("a", 1))
    await outbox.send(TextOut("b", 1))
    sending = asyncio.create_task(outbox.send(TOOL))
    await settle()
    assert not sending.done() and wire.started == [TextOut("a", 1)]
    wire.complete()
    await settle()
    assert not sending.done() and wire.started[-1] == TextOut("b", 1)
    wire.complete()
    await settle()
    assert sending.done() and wire.started[-1] == TOOL  # started, not yet written
    await outbox.send(TextOut("c", 1))  # behind the tool request: not merged into anything before it
    sending = asyncio.create_task(outbox.send(USAGE))
    for _ in range(3):
        wire.complete()
    await sending
    await outbox.flush()
    assert wire.written == [TextOut("a", 1), TextOut("b", 1), TOOL, TextOut("c", 1), USAGE]


async def test_text_of_another_model_round_is_not_merged():
    wire = FakeWire()
    outbox = Outbox(wire.write)
    await outbox.send(TOOL)
    await outbox.send(TextOut("round 1, ", 1))
    await outbox.send(TextOut("still 1. ", 1))
    sending = asyncio.create_task(outbox.send(TextOut("round 2", 2)))
    await settle()
    assert not sending.done()
    for _ in range(3):
        wire.complete()
    await sending
    await outbox.flush()
    assert wire.written == [TOOL, TextOut("round 1, still 1. ", 1), TextOut("round 2", 2)]


async def test_over_the_bound_send_waits_until_the_write_in_flight_takes_the_queue():
    wire = FakeWire()
    outbox = Outbox(wire.write, max_buffered_bytes=10)
    await outbox.send(TextOut("first", 1))
    await outbox.send(TextOut("ééé", 1))  # 6 bytes queued: under the bound
    sending = asyncio.create_task(outbox.send(TextOut("éé", 1)))  # 10 bytes: not yet over
    await settle()
    assert sending.done()
    sending = asyncio.create_task(outbox.send(TextOut("x", 1)))  # 11 bytes (6 characters): over
    await settle()
    assert not sending.done(), "send returned with more than the bound queued and nothing written"
    wire.complete()
    await settle()
    assert sending.done() and wire.started[-1] == TextOut("éééééx", 1)
    wire.complete()
    await outbox.flush()


async def test_a_failed_write_surfaces_at_the_next_send_and_every_flush():
    wire = FakeWire()
    outbox = Outbox(wire.write)
    await outbox.send(TextOut("a", 1))
    await outbox.send(TextOut("b", 1))
    wire.fail(CallEnded("the client went away"))
    await settle()
    with pytest.raises(CallEnded, match="went away"):
        await outbox.send(TextOut("c", 1))
    with pytest.raises(CallEnded, match="went away"):
        await outbox.flush()
    assert wire.started == [TextOut("a", 1)], "text queued behind a failed write was still written"


async def test_a_write_failing_while_flush_waits_surfaces_in_flush():
    wire = FakeWire()
    outbox = Outbox(wire.write)
    await outbox.send(USAGE)
    flushing = asyncio.create_task(outbox.flush())
    await settle()
    assert not flushing.done()
    wire.fail(CallEnded("the client went away"))
    with pytest.raises(CallEnded):
        await flushing


async def test_a_failed_write_nobody_asks_about_logs_nothing(caplog):
    wire = FakeWire()
    outbox = Outbox(wire.write)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        await outbox.send(TextOut("a", 1))
        wire.fail(CallEnded("the client went away"))
        await settle()
        await outbox.aclose()
        gc.collect()
        await settle()
    assert caplog.records == []


@pytest.mark.parametrize("blocked_in", ["nothing", "send", "flush"])
async def test_a_cancelled_chat_leaves_no_task_behind(blocked_in):
    wire = FakeWire()
    outbox = Outbox(wire.write, max_buffered_bytes=4)
    chat_waits = asyncio.Event()

    async def chat() -> None:
        try:
            await outbox.send(TextOut("in flight", 1))
            await outbox.send(TextOut("queue", 1) if blocked_in == "send" else TextOut("q", 1))
            if blocked_in == "flush":
                await outbox.flush()
            await chat_waits.wait()  # a provider that sends nothing more
        finally:
            await outbox.aclose()

    running = asyncio.create_task(chat())
    await settle()
    assert wire.started == [TextOut("in flight", 1)] and not running.done()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert wire.cancelled == 1 and wire.written == []


async def test_one_writer_task_makes_every_write_of_a_chat():
    wire = FakeWire()
    writers: list[asyncio.Task[object] | None] = []
    outbox = Outbox(lambda event: (writers.append(asyncio.current_task()), wire.write(event))[1])
    for event in (TextOut("a", 1), TOOL, TextOut("b", 2), USAGE):
        await outbox.send(event)
        wire.complete()
        await settle()
    await outbox.flush()
    assert texts(wire.written) == [("a", 1), ("b", 2)] and len(wire.written) == 4
    assert len(set(writers)) == 1 and writers[0] is not asyncio.current_task()
    assert len(asyncio.all_tasks()) == 2  # this test and the writer, idle between writes
    await outbox.aclose()
    assert asyncio.all_tasks() == {asyncio.current_task()}

"""The outbox's text window: the first text of a round at once, the rest held and sent as one message,
released at once by any other event, `flush` and the bound, one timer at most and none without a
window, and nothing left behind by `aclose`.

No assertion depends on a short interval passing quickly: what must not wait for the window uses a
60 s window and is bounded by 5 s; what must wait for it is checked from below (the clock only moves on).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.server.test_outbox import TOOL, USAGE, FakeWire, settle
from toolwire.server.chat_events import ChatEvent, TextOut
from toolwire.server.outbox import Outbox

LONG = 60.0
"""A window no test waits for: what goes out before it went out without waiting."""
BOUND = 5.0
"""The longest a test waits for what must not wait for the window (a wrong outbox fails, not hangs)."""
SHORT = 0.2
"""A window a test does wait for."""


class Recorder:
    """A write that completes at once and records each event with the loop time it was written."""

    def __init__(self) -> None:
        self.written: list[tuple[ChatEvent, float]] = []
        self._changed = asyncio.Event()

    async def write(self, event: ChatEvent) -> None:
        self.written.append((event, asyncio.get_running_loop().time()))
        self._changed.set()

    @property
    def events(self) -> list[ChatEvent]:
        return [event for event, _ in self.written]

    async def wait_for(self, count: int) -> None:
        """Waits until `count` events are written; fails after BOUND seconds."""
        async with asyncio.timeout(BOUND):
            while len(self.written) < count:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def timers() -> AsyncIterator[list[asyncio.TimerHandle]]:
    """Every handle an outbox made with the running loop's `call_later` during the test (the loop's
    method is wrapped; `asyncio.sleep`'s own timers are left out)."""
    loop = asyncio.get_running_loop()
    made: list[asyncio.TimerHandle] = []
    call_later = loop.call_later

    def recording_call_later(delay, callback, *arguments, **keywords):  # type: ignore[no-untyped-def]
        handle = call_later(delay, callback, *arguments, **keywords)
        if isinstance(getattr(callback, "__self__", None), Outbox):
            made.append(handle)
        return handle

    loop.call_later = recording_call_later  # type: ignore[method-assign]
    yield made
    del loop.call_later


def windowed(write, seconds: float, **keywords) -> Outbox:  # type: ignore[no-untyped-def]
    outbox = Outbox(write, **keywords)
    outbox.set_text_window(seconds)
    return outbox


async def test_the_first_text_goes_out_at_once_and_what_follows_as_one_message_after_the_window(timers):
    wire = Recorder()
    outbox = windowed(wire.write, SHORT)
    await outbox.send(TextOut("A", 1))
    await settle()
    assert wire.events == [TextOut("A", 1)], "the first text of the round waited"
    await outbox.send(TextOut("B", 1))
    await outbox.send(TextOut("C", 1))
    await settle()
    assert wire.events == [TextOut("A", 1)] and outbox.window_timer_pending
    await wire.wait_for(2)
    (_, first_at), (merged, merged_at) = wire.written
    assert merged == TextOut("BC", 1)
    assert merged_at >= first_at + SHORT - 0.01, "the held text went out before the window had passed"
    assert len(timers) == 1 and not outbox.window_timer_pending


async def test_text_after_the_window_has_passed_goes_out_at_once(timers):
    wire = Recorder()
    outbox = windowed(wire.write, SHORT)
    await outbox.send(TextOut("A", 1))
    await asyncio.sleep(SHORT * 1.5)  # at least that long: the window since A has passed
    await outbox.send(TextOut("B", 1))
    await settle()
    assert wire.events == [TextOut("A", 1), TextOut("B", 1)] and timers == []


async def test_another_event_sends_the_held_text_at_once_and_keeps_the_order(timers):
    wire = Recorder()
    outbox = windowed(wire.write, LONG)
    for text in ("A", "B", "C"):
        await outbox.send(TextOut(text, 1))
    async with asyncio.timeout(BOUND):
        await outbox.send(TOOL)
        await wire.wait_for(3)
    assert wire.events == [TextOut("A", 1), TextOut("BC", 1), TOOL]
    assert not outbox.window_timer_pending and all(handle.cancelled() for handle in timers)


async def test_text_of_a_new_round_goes_out_at_once(timers):
    wire = Recorder()
    outbox = windowed(wire.write, LONG)
    await outbox.send(TextOut("one, ", 1))
    await outbox.send(TextOut("still one", 1))  # held
    async with asyncio.timeout(BOUND):
        await outbox.send(TextOut("two", 2))
        await wire.wait_for(3)
    assert wire.events == [TextOut("one, ", 1), TextOut("still one", 1), TextOut("two", 2)]
    await outbox.send(USAGE)
    await outbox.send(TextOut("three", 3))  # the first text of round 3, behind the usage
    await wire.wait_for(5)
    assert wire.events[3:] == [USAGE, TextOut("three", 3)]


async def test_flush_writes_the_held_text_at_once():
    wire = Recorder()
    outbox = windowed(wire.write, LONG)
    for text in ("A", "B", "C"):
        await outbox.send(TextOut(text, 1))
    async with asyncio.timeout(BOUND):
        await outbox.flush()
    assert wire.events == [TextOut("A", 1), TextOut("BC", 1)] and not outbox.window_timer_pending


async def test_held_text_over_the_bound_goes_out_at_once():
    wire = Recorder()
    outbox = windowed(wire.write, LONG, max_buffered_bytes=10)
    await outbox.send(TextOut("first", 1))
    await outbox.send(TextOut("12345", 1))  # held: under the bound
    await settle()
    assert wire.events == [TextOut("first", 1)]
    async with asyncio.timeout(BOUND):
        await outbox.send(TextOut("678901", 1))  # 11 bytes held: over the bound
        await wire.wait_for(2)
    assert wire.events == [TextOut("first", 1), TextOut("12345678901", 1)]


async def test_text_merged_behind_a_write_in_flight_waits_for_the_window_too():
    wire = FakeWire()
    outbox = windowed(wire.write, LONG)
    await outbox.send(TextOut("A", 1))
    await outbox.send(TextOut("B", 1))  # queued behind A's write
    await outbox.send(TextOut("C", 1))
    wire.complete()
    await settle()
    assert wire.started == [TextOut("A", 1)], "text queued behind a write went out inside the window"
    assert outbox.window_timer_pending
    sending = asyncio.create_task(outbox.send(USAGE))
    wire.complete()
    wire.complete()
    async with asyncio.timeout(BOUND):
        await sending
        await outbox.flush()
    assert wire.written == [TextOut("A", 1), TextOut("BC", 1), USAGE]


async def test_text_queued_behind_a_write_in_flight_is_released_by_flush_without_a_timer(timers):
    wire = FakeWire()
    outbox = windowed(wire.write, LONG)
    await outbox.send(TextOut("A", 1))
    await outbox.send(TextOut("B", 1))  # queued behind A's write, not yet due
    flushing = asyncio.create_task(outbox.flush())
    await settle()
    wire.complete()
    wire.complete()
    async with asyncio.timeout(BOUND):
        await flushing
    assert wire.written == [TextOut("A", 1), TextOut("B", 1)]
    assert timers == [], "the writer armed a timer for text that flush had already released"


async def test_aclose_writes_nothing_more_and_leaves_no_timer_or_task(timers):
    wire = Recorder()
    outbox = windowed(wire.write, SHORT)
    await outbox.send(TextOut("A", 1))
    await settle()  # A is written
    await outbox.send(TextOut("B", 1))  # held, its timer pending
    assert outbox.window_timer_pending and len(timers) == 1
    await outbox.aclose()
    assert not outbox.window_timer_pending and timers[0].cancelled()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    await asyncio.sleep(SHORT * 1.5)  # past the window: the cancelled timer wrote nothing
    assert wire.events == [TextOut("A", 1)]


async def test_one_timer_per_held_message_not_per_chunk(timers):
    wire = Recorder()
    outbox = windowed(wire.write, LONG)
    await outbox.send(TextOut("A", 1))
    await settle()  # A is written
    for index in range(50):
        await outbox.send(TextOut(f"{index} ", 1))
    assert len(timers) == 1 and outbox.window_timer_pending
    await outbox.flush()
    assert wire.events == [TextOut("A", 1), TextOut("".join(f"{index} " for index in range(50)), 1)]


async def test_without_a_window_no_timer_is_made_and_nothing_is_held(timers):
    wire = FakeWire()
    outbox = Outbox(wire.write)  # no set_text_window: no window, as a chat that asks for none
    await outbox.send(TextOut("A", 1))
    await outbox.send(TextOut("B", 1))  # queued behind A's write: merged as always
    await outbox.send(TextOut("C", 1))
    wire.complete()
    await settle()
    assert wire.started == [TextOut("A", 1), TextOut("BC", 1)], "text waited with no window"
    wire.complete()
    await settle()
    await outbox.send(TextOut("D", 1))  # nothing in flight: written at once
    await settle()
    assert wire.started[-1] == TextOut("D", 1)
    wire.complete()
    await outbox.flush()
    assert timers == [] and not outbox.window_timer_pending


def test_a_negative_window_is_refused():
    with pytest.raises(ValueError, match="negative"):
        Outbox(FakeWire().write).set_text_window(-0.1)

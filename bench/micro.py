"""Our own code's CPU per relayed chunk, in isolation: `python -m bench.micro`.

Feeds a recorded-shape OpenAI and Anthropic SSE body (one network read per event, as providers
send them) through the adapter's parse path (`_events`), then each text event through
`convert.event_to_proto`, and reports µs of CPU per chunk. No sockets, no gRPC, no SDK: this is the
part of the relay that is ours, so a change to it shows here with little noise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from bench.fake_provider import AnthropicFormat, OpenAIFormat
from toolwire.server import convert
from toolwire.server.chat_events import ChatEvent, TextOut
from toolwire.server.conversation import ChatRequest, GenerationOptions, Message, ModelCall, Role
from toolwire.server.events import ModelEvent, TextDelta
from toolwire.server.loop import ChatLoop
from toolwire.server.models import anthropic_messages, openai_chat
from toolwire.server.models.resilience import ResilientModel, RetryPolicy
from toolwire.server.pending import PendingCalls

CHUNKS = 5_000
REPEATS = 15


def _body(wire: OpenAIFormat | AnthropicFormat) -> list[bytes]:
    pieces = [wire.start() + wire.text("R1|0@1|")]
    pieces += [wire.text(f"{seq}@1796000000000000000|") for seq in range(1, CHUNKS)]
    pieces.append(wire.end(False, CHUNKS))
    return pieces


async def _reads(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _openai(pieces: list[bytes]) -> int:
    state = openai_chat._StreamState()
    count = 0
    async for event in openai_chat._events(_reads(pieces), state, "bench", openai_chat.OpenAIQuirks()):
        if isinstance(event, TextDelta):
            convert.event_to_proto(TextOut(event.text, 1))
            count += 1
    return count


async def _anthropic(pieces: list[bytes]) -> int:
    count = 0
    stream = anthropic_messages._events(_reads(pieces), "bench", ())
    async for event in stream:
        if isinstance(event, TextDelta):
            convert.event_to_proto(TextOut(event.text, 1))
            count += 1
    return count


class _ReplayModel:
    """The OpenAI adapter's stream over a canned body, as `OpenAIChatModel.stream` runs it."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    @property
    def model_id(self) -> str:
        return "openai/bench"

    async def stream(self, call: ModelCall) -> AsyncIterator[ModelEvent]:
        state = openai_chat._StreamState()
        quirks = openai_chat.OpenAIQuirks()
        async for event in openai_chat._events(_reads(self._pieces), state, "openai", quirks):
            yield event


async def _whole_loop(pieces: list[bytes]) -> int:
    """Everything of ours per chunk: adapter, retry wrapper, the loop, the proto of each event."""
    sent = 0

    async def send(event: ChatEvent) -> None:
        nonlocal sent
        convert.event_to_proto(event)
        sent += 1

    model = ResilientModel("openai/bench", [_ReplayModel(pieces)], RetryPolicy())  # type: ignore[list-item]
    messages = (Message(Role.USER, "hi"),)
    request = ChatRequest("openai/bench", messages, (), 4, 60.0, False, GenerationOptions())
    await ChatLoop(request, model, PendingCalls(60.0, 1 << 20), send).run()
    return sent - 2  # the usage and finish events


def main() -> None:
    for name, run, wire in (("openai adapter", _openai, OpenAIFormat("bench")),
                            ("anthropic adapter", _anthropic, AnthropicFormat("bench")),
                            ("openai, the whole loop", _whole_loop, OpenAIFormat("bench"))):  # fmt: skip
        pieces = _body(wire)
        best = float("inf")
        for _ in range(REPEATS):
            started = time.process_time()
            count = asyncio.run(run(pieces))
            best = min(best, (time.process_time() - started) / count * 1e6)
            assert count == CHUNKS, count
        print(f"{name}: {best:.1f} µs CPU per text chunk, best of {REPEATS} x {CHUNKS:,}")


if __name__ == "__main__":
    main()

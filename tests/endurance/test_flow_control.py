"""Flow control from the client back to the provider: a client that stops reading must make the
server stop reading the provider's stream, instead of buffering it without bound.

A real `toolwire serve` process relays an OpenAI-style stream that the fake provider writes as fast
as it can. The client reads the first chunk and then nothing: the fake's write count must come to
rest far below the stream's length, and the server's resident memory must not grow by anything like
the stream's length. Then the client reads on and gets all the text, in order; the server merged
the chunks queued behind its writes meanwhile, so it arrives in fewer messages than chunks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import grpc
import pytest

from tests.e2e.conftest import ServerProcess, start_server, stop_server
from tests.endurance.support import CountingFakeProvider, rss_kib, text_reply
from tests.fakes.provider import Reply
from toolwire.v1 import chat_pb2 as pb
from toolwire.v1 import chat_pb2_grpc

pytestmark = pytest.mark.timeout(90)

CHUNKS = 3_000
CHUNK_TEXT_BYTES = 16 * 1024
TOTAL_TEXT_BYTES = CHUNKS * CHUNK_TEXT_BYTES  # ~48 MiB of text, ~49 MiB on the wire
MIB = 1024 * 1024


def chunk_text(index: int) -> str:
    head = f"<{index:06d}>"
    return head + "x" * (CHUNK_TEXT_BYTES - len(head))


@pytest.fixture(scope="module")
def fake() -> Iterator[CountingFakeProvider]:
    with CountingFakeProvider(send_buffer_bytes=64 * 1024) as running:
        yield running


@pytest.fixture(scope="module")
def server(fake, tmp_path_factory) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("flow") / "toolwire.toml"
    config.write_text(
        f'[retry]\nmax_attempts = 1\n\n[providers.openai]\nbase_url = "{fake.url}/v1"\nmodels = ["flood"]\n'
    )
    running = start_server("--config", str(config), environment={"OPENAI_API_KEY": "sk-flow-test"})
    yield running
    log = running.log_text()
    assert stop_server(running) == 0, log


def start(model: str) -> pb.ChatRequest:
    return pb.ChatRequest(
        start=pb.ChatStart(model=model, messages=[pb.Message(role=pb.ROLE_USER, content="flood me")])
    )


async def wait_until_still(read, *, quiet_seconds: float = 1.0, limit_seconds: float = 30.0) -> int:
    """Polls `read()` until it has not changed for `quiet_seconds` (at most `limit_seconds`)."""
    last, last_change, started = read(), time.monotonic(), time.monotonic()
    while time.monotonic() - started < limit_seconds:
        await asyncio.sleep(0.1)
        now = read()
        if now != last:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change >= quiet_seconds:
            break
    return last


async def test_a_client_that_stops_reading_stops_the_provider_read_loop(fake, server):
    # A ChatFinish repeats the whole answer (text, messages): far past gRPC's default 4 MiB. Without
    # BDP probing the client's HTTP/2 window stays small, so what the provider gets to write measures
    # what the server holds, not how far grpc's window estimate grew (8-21 MiB with it, by load).
    options = [("grpc.max_receive_message_length", 256 * MIB), ("grpc.http2.bdp_probe", 0)]
    async with grpc.aio.insecure_channel(server.target, options=options) as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        # Warm up: the provider client, the gRPC paths and the allocator, so the baseline is honest.
        fake.enqueue(text_reply(*(chunk_text(index) for index in range(50))))
        warm = stub.Chat()
        await warm.write(start("openai/flood"))
        async for response in warm:
            if response.HasField("finish"):
                await warm.done_writing()
        assert await warm.code() is grpc.StatusCode.OK
        baseline_rss = rss_kib(server.process.pid)
        written_before = fake.bytes_written

        flood = text_reply(*(chunk_text(index) for index in range(CHUNKS)))
        total = len(flood.body)
        fake.enqueue(Reply(body=flood.body))
        call = stub.Chat()
        await call.write(start("openai/flood"))
        first = await call.read()
        assert first.HasField("started")
        first_text = await call.read()
        expected_text = "".join(chunk_text(index) for index in range(CHUNKS))
        assert expected_text.startswith(first_text.text_delta.text) and first_text.text_delta.text

        # The client reads nothing more. The provider keeps writing until every buffer between it
        # and the client is full: its count must come to rest, far below the stream's length.
        written = await wait_until_still(lambda: fake.bytes_written - written_before)
        rss_growth_kib = rss_kib(server.process.pid) - baseline_rss
        print(
            f"provider wrote {written / MIB:.1f} of {total / MIB:.1f} MiB; server RSS +{rss_growth_kib} KiB"
        )
        assert written < total // 4, f"the server read {written} of {total} bytes with nobody reading"
        assert fake.completed == 1, "the flood's response finished: nothing held the provider back"
        assert rss_growth_kib * 1024 < total // 4, f"the server's memory grew by {rss_growth_kib} KiB"

        # The client reads on: all the text, in order, then the finish.
        received = len(first_text.text_delta.text)
        messages = 1
        while (response := await call.read()) is not grpc.aio.EOF:
            if response.HasField("text_delta"):
                text = response.text_delta.text
                assert text == expected_text[received : received + len(text)], f"text {messages} out of order"
                received += len(text)
                messages += 1
            elif response.HasField("finish"):
                await call.done_writing()
        assert await call.code() is grpc.StatusCode.OK
        assert received == len(expected_text)
        print(f"{CHUNKS} chunks in {messages} messages")
        assert messages < CHUNKS, "the text queued while the client did not read was not merged"
        assert fake.completed == 2

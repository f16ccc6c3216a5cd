"""The fake provider itself: byte-exact replies, recorded requests, and the faults it can inject."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx2
import pytest

from tests.fakes.provider import FakeProvider, Reply

SSE_BODY = (
    "".join(
        f'data: {{"choices": [{{"delta": {{"content": "Grüße, 世界 {n} 🌍"}}}}]}}\n\n' for n in range(20)
    ).encode()
    + b"data: [DONE]\n\n"
)


async def stream_raw(client: httpx2.AsyncClient, received: list[bytes]) -> None:
    """Streams a completion into `received`, chunk by chunk, so a test sees what came before an error."""
    async with client.stream("POST", "/v1/chat/completions", json={}) as response:
        async for chunk in response.aiter_raw():
            received.append(chunk)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as running:
        yield running


@pytest.fixture
async def client(fake: FakeProvider) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=fake.url, trust_env=False, timeout=2.0) as opened:
        yield opened


async def test_split_reply_arrives_byte_identical_in_several_chunks(fake, client):
    fake.enqueue(Reply(body=SSE_BODY, split_seed=7))

    async with client.stream("POST", "/v1/chat/completions", json={}) as response:
        chunks = [chunk async for chunk in response.aiter_raw()]

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    assert len(chunks) > 1
    assert b"".join(chunks) == SSE_BODY
    assert fake.completed == 1
    assert fake.closed_early == 0


async def test_requests_are_recorded_in_order(fake, client):
    fake.enqueue(Reply(body=b"data: one\n\n"), Reply.json(200, {"id": "msg_1"}))

    first = await client.post(
        "/v1/chat/completions?api-version=1",
        json={"model": "gpt-test", "stream": True},
        headers={"Authorization": "Bearer sk-fake", "X-Stainless-Lang": "python"},
    )
    second = await client.post("/v1/messages", json={"model": "claude-test"})

    assert first.content == b"data: one\n\n"
    assert second.json() == {"id": "msg_1"}
    assert second.headers["content-length"] == str(len(second.content))
    fake.wait_for_requests(2)
    recorded = fake.requests
    assert [(r.method, r.path) for r in recorded] == [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/messages"),
    ]
    assert recorded[0].headers["authorization"] == "Bearer sk-fake"
    assert recorded[0].headers["x-stainless-lang"] == "python"
    assert recorded[0].json() == {"model": "gpt-test", "stream": True}
    assert "sk-fake" not in repr(recorded[0])


async def test_chunked_request_body_is_read(fake, client):
    async def parts() -> AsyncIterator[bytes]:
        yield b'{"model": '
        yield b'"x"}'

    fake.enqueue(Reply.json(200, {}))
    response = await client.post("/v1/chat/completions", content=parts())

    assert response.status_code == 200
    assert fake.requests[0].json() == {"model": "x"}


async def test_json_reply_carries_status_and_extra_headers(fake, client):
    fake.enqueue(Reply.json(429, {"error": {"type": "rate_limit_error"}}, headers={"retry-after": "1"}))

    response = await client.post("/v1/messages", json={})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["connection"] == "close"
    assert response.json() == {"error": {"type": "rate_limit_error"}}


async def test_empty_queue_answers_500(fake, client):
    response = await client.post("/v1/chat/completions", json={})

    assert response.status_code == 500
    assert response.json()["error"]["message"] == "fake provider: no reply queued"
    assert len(fake.requests) == 1


async def test_client_closing_mid_stream_counts_as_closed_early(fake, client):
    fake.enqueue(Reply(body=SSE_BODY, split_seed=3, chunk_delay=0.05))

    async with client.stream("POST", "/v1/chat/completions", json={}) as response:
        async for _chunk in response.aiter_raw():
            break

    fake.wait_closed_early(timeout=1.0)
    assert fake.completed == 0


async def test_reset_after_cuts_the_body_with_an_error(fake, client):
    fake.enqueue(Reply(body=SSE_BODY, split_seed=5, reset_after=100))
    received: list[bytes] = []

    with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
        await stream_raw(client, received)

    assert b"".join(received) == SSE_BODY[:100]
    assert (fake.completed, fake.closed_early) == (0, 0)


async def test_stall_then_client_timeout_counts_as_closed_early(fake):
    fake.enqueue(Reply(body=SSE_BODY, stall_after=10))

    async with httpx2.AsyncClient(base_url=fake.url, trust_env=False, timeout=0.3) as client:
        received: list[bytes] = []
        with pytest.raises(httpx2.ReadTimeout):
            await stream_raw(client, received)

    assert b"".join(received) == SSE_BODY[:10]
    fake.wait_closed_early(timeout=1.0)
    assert fake.completed == 0


async def test_stop_returns_promptly_while_a_reply_stalls():
    fake = FakeProvider()
    fake.start()
    try:
        fake.enqueue(Reply(body=SSE_BODY, stall_after=0))
        async with (
            httpx2.AsyncClient(base_url=fake.url, trust_env=False, timeout=2.0) as client,
            client.stream("POST", "/v1/chat/completions", json={}) as response,
        ):
            assert response.status_code == 200
            started = time.monotonic()
            fake.stop()
            assert time.monotonic() - started < 1.0
            with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
                await response.aread()
    finally:
        fake.stop()
    assert fake.closed_early == 0


def test_wait_for_requests_times_out_with_an_assertion(fake):
    with pytest.raises(AssertionError, match="1 request"):
        fake.wait_for_requests(1, timeout=0.05)


def test_sse_body_is_valid_json_per_event():
    # Guards the fixture body itself: each event is a JSON document except the final [DONE].
    events = [line.removeprefix("data: ") for line in SSE_BODY.decode().split("\n\n") if line]
    assert [json.loads(event) for event in events[:-1]]
    assert events[-1] == "[DONE]"

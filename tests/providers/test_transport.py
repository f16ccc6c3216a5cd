"""The provider transport (models/transport.py): what the SDK client decides about a request still
reaches the wire, the connection pool is reused, and odd error responses stay clean domain errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import web

from tests.fakes.provider import FakeProvider, Reply
from tests.providers.conftest import model_call, provider_settings
from toolwire.server import errors
from toolwire.server.models import anthropic_messages, openai_chat
from toolwire.server.models.remote import RemoteProvider
from toolwire.server.models.transport import MAX_ERROR_BODY_BYTES, environment_proxy, json_body
from toolwire.server.tools import parse_tool_definition

REPLY = {
    "openai": b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n",
    "anthropic": b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":'
    b'{"input_tokens":1,"output_tokens":0}}}\n\nevent: message_delta\ndata: {"type":"message_delta",'
    b'"delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}\n\nevent: message_stop\n'
    b'data: {"type":"message_stop"}\n\n',
}


@pytest.fixture(params=["openai", "anthropic"])
def wire(request) -> str:
    return request.param


async def run_once(provider: RemoteProvider) -> list[object]:
    async with contextlib.aclosing(provider.resolve("test-model").stream(model_call())) as events:
        return [event async for event in events]


async def failure_at(wire: str, url: str) -> errors.ToolwireError:
    """The error of one model call through a fresh provider of `wire` at `url` (closed after)."""
    provider = RemoteProvider(provider_settings(wire, url))
    try:
        with pytest.raises(errors.ToolwireError) as caught:
            await run_once(provider)
    finally:
        await provider.close()
    return caught.value


async def test_the_sdk_clients_identity_headers_reach_the_provider(wire, fake_provider):
    """The SDK client stays the source of what is sent: its user agent and, for Anthropic, the API
    version it was built for."""
    fake_provider.enqueue(Reply(body=REPLY[wire]))
    provider = RemoteProvider(provider_settings(wire, fake_provider.url))
    try:
        await run_once(provider)
    finally:
        await provider.close()
    headers = fake_provider.requests[0].headers
    sdk = {"openai": ("AsyncOpenAI/Python", openai), "anthropic": ("AsyncAnthropic/Python", anthropic)}
    agent, module = sdk[wire]
    assert headers["user-agent"] == f"{agent} {module.__version__}"
    assert headers["content-type"] == "application/json"
    if wire == "anthropic":
        expected = anthropic.AsyncAnthropic(api_key="x").default_headers["anthropic-version"]
        assert headers["anthropic-version"] == expected


async def test_each_request_carries_the_headers_it_was_given(fake_provider):
    """The transport prepares a request's URL and headers once per (path, extra headers): two
    models on one pool with different extra headers each send their own, and only their own."""
    transport = RemoteProvider(provider_settings("openai", fake_provider.url)).transport()
    try:
        for extra in ({"X-Route": "blue"}, {"X-Route": "green"}, {"X-Route": "blue"}, {}):
            fake_provider.enqueue(Reply(body=REPLY["openai"]))
            async with transport.post_stream("/chat/completions", {"n": 1}, extra) as body:
                [piece async for piece in body]
    finally:
        await transport.close()
    routes = [request.headers.get("x-route") for request in fake_provider.requests]
    assert routes == ["blue", "green", "blue", None]
    assert all(request.headers["accept"] == "text/event-stream" for request in fake_provider.requests)


@contextlib.asynccontextmanager
async def keep_alive_provider(wire: str, connections: list[object]) -> AsyncIterator[str]:
    """A provider that keeps connections open (the test fake closes each one) and, like many real
    ones, ends the HTTP body a moment after the stream's last event; its URL. Each request's
    connection (transport) is appended to `connections`."""

    async def stream(request: web.Request) -> web.StreamResponse:
        connections.append(request.transport)
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(REPLY[wire])
        await asyncio.sleep(0.05)  # the last event is read; the body's end comes in a later packet
        await response.write_eof()
        return response

    application = web.Application()
    application.router.add_post("/v1/chat/completions", stream)
    application.router.add_post("/v1/messages", stream)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_connection_is_kept_for_the_next_model_call(wire):
    """The reader stops at the last event; the connection still goes back to the pool (drained in the
    background), so the next model call does not pay a new TCP and TLS handshake."""
    connections: list[object] = []
    async with keep_alive_provider(wire, connections) as url:
        provider = RemoteProvider(provider_settings(wire, url))
        try:
            for _ in range(3):
                events = await run_once(provider)
                assert events, "no events from the stream"
                await asyncio.sleep(0.2)  # room for the background drain (it needs ~0.05 s)
        finally:
            await provider.close()
    assert len(connections) == 3
    assert len({id(connection) for connection in connections}) == 1, "a new connection per model call"


def test_one_provider_serves_successive_event_loops(wire, fake_provider):
    """A pool belongs to one event loop; a provider used again from a second loop (a test, a
    restarted server in the same process) makes a new one instead of failing."""
    fake_provider.enqueue(Reply(body=REPLY[wire]), Reply(body=REPLY[wire]))
    provider = RemoteProvider(provider_settings(wire, fake_provider.url))

    async def run_and_close() -> list[object]:
        try:
            return await run_once(provider)
        finally:
            await provider.close()

    first = asyncio.run(run_and_close())
    second = asyncio.run(run_and_close())
    assert first and first == second
    # Both calls reached the provider. (Not `completed`: close() may hang up before the provider has
    # written the body's last bytes after the final event, which it then counts as closed early.)
    assert len(fake_provider.requests) == 2


async def test_an_oversized_non_json_error_body_is_cut_short(wire, fake_provider):
    body = b"upstream proxy says no. " + b"x" * (3 * MAX_ERROR_BODY_BYTES)
    fake_provider.enqueue(Reply(status=502, body=body, content_type="text/html"))
    error = await failure_at(wire, fake_provider.url)
    assert type(error) is errors.ProviderUnavailable
    assert "HTTP 502" in error.message
    assert "upstream proxy says no." in error.message
    assert len(error.message) < MAX_ERROR_BODY_BYTES + 200


async def test_a_refused_connection_is_unavailable_and_names_no_header(wire):
    with FakeProvider() as stopped:
        url = stopped.url
    error = await failure_at(wire, url)
    assert type(error) is errors.ProviderUnavailable
    assert "connection failed" in error.message
    assert "sk-" not in error.message


@pytest.mark.parametrize(
    ("environment", "url", "expected"),
    [
        ({}, "https://api.openai.com/v1", None),
        (
            {"HTTPS_PROXY": "http://proxy.internal:3128"},
            "https://api.openai.com/v1",
            "http://proxy.internal:3128",
        ),
        ({"HTTPS_PROXY": "http://proxy.internal:3128"}, "http://127.0.0.1:8000/v1", None),
        (
            {"HTTP_PROXY": "http://proxy.internal:3128"},
            "http://vllm.internal:8000/v1",
            "http://proxy.internal:3128",
        ),
        (
            {"HTTPS_PROXY": "http://proxy.internal:3128", "NO_PROXY": "api.anthropic.com"},
            "https://api.anthropic.com",
            None,
        ),
        (
            {"ALL_PROXY": "socks5://proxy.internal:1080"},
            "https://api.openai.com/v1",
            "socks5://proxy.internal:1080",
        ),
    ],
)
def test_the_proxy_comes_from_the_environment_as_the_sdks_take_it(monkeypatch, environment, url, expected):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert environment_proxy(url) == expected


async def test_the_request_is_the_one_the_sdk_itself_would_send(wire, fake_provider):
    """The same model call sent by the transport and by the official SDK's own `create`: the same
    path, the same JSON body, and the same auth, version and identity headers."""
    fake_provider.enqueue(Reply(body=REPLY[wire]), Reply(body=REPLY[wire]))
    settings = provider_settings(wire, fake_provider.url)
    provider = RemoteProvider(settings)
    try:
        await run_once(provider)
    finally:
        await provider.close()
    call = model_call()
    if wire == "openai":
        client: Any = openai.AsyncOpenAI(api_key=settings.api_key, base_url=settings.base_url, max_retries=0)
        body = openai_chat.request_body(call, "test-model", settings.quirks)
        create = client.chat.completions.with_streaming_response.create
    else:
        client = anthropic.AsyncAnthropic(api_key=settings.api_key, base_url=settings.base_url, max_retries=0)
        body = anthropic_messages.request_body(call, "test-model", settings.anthropic)
        create = client.messages.with_streaming_response.create
    async with create(**body) as response:
        await response.read()
    await client.close()
    ours, sdk = fake_provider.requests
    assert ours.path == sdk.path
    assert ours.json() == sdk.json()
    for name in ("authorization", "x-api-key", "anthropic-version", "user-agent", "content-type"):
        assert ours.headers.get(name) == sdk.headers.get(name), name


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "café \u2028 🌦️"}], "stream": True, "temperature": 0.5},
        {"tools": [{"description": "\ud800"}]},  # a lone surrogate: json.loads takes "\ud800" escapes
        {"tools": [{"parameters": {"maximum": 10**30}}]},  # past 64 bits
    ],
    ids=["utf-8", "lone-surrogate", "big-integer"],
)
def test_every_request_body_is_sent_as_json_that_reads_back_the_same(body):
    """orjson writes the body; what it refuses goes out through json.dumps, never as an error."""
    sent = json_body(body)
    assert json.loads(sent) == body
    if "messages" in body:
        assert "café".encode() in sent  # UTF-8, not \\u escapes: smaller on the wire


async def test_a_tool_schema_with_a_lone_surrogate_escape_still_reaches_the_provider(wire, fake_provider):
    """A request's schema text may hold a "\\ud800" escape (json.loads takes it, as a lone surrogate);
    the model call still goes out, with the escape as sent."""
    fake_provider.enqueue(Reply(body=REPLY[wire]))
    schema = parse_tool_definition(0, "probe", "", '{"type": "object", "description": "\\ud800"}')
    provider = RemoteProvider(provider_settings(wire, fake_provider.url))
    try:
        stream = provider.resolve("test-model").stream(model_call(tools=[schema]))
        async with contextlib.aclosing(stream) as events:
            assert [event async for event in events]
    finally:
        await provider.close()
    (request,) = fake_provider.requests
    assert b"\\ud800" in request.body

"""How the adapters reach a provider: one streaming POST over one aiohttp connection pool per provider.

Why not the SDK's own request path: the official SDK transforms every request's parameters through
its type machinery and builds an httpx request, about 4 ms of CPU per model call on this project's
reference machine, where this path costs about 0.35 ms (`make bench`, docs/performance.md). Each model
call, the first one and the one after every tool round, would pay it on the critical path. So the
SDK client stays the source of *what* is sent (base URL, auth and version headers, its user agent,
organisation and project headers from the environment), and aiohttp, an asyncio HTTP client with a C
parser, sends it. The SDKs offer aiohttp as their own faster transport too; we use it without the
per-call request build.

Failures become domain errors here, in one place: an HTTP error status through
`provider_errors.error_for_status` (with `Retry-After`), a stall as a timeout, a refused or broken
connection as unavailable. The API key never appears in any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import yarl
from multidict import CIMultiDict

from toolwire.server.errors import ProviderError
from toolwire.server.models import provider_errors

MAX_CONNECTIONS = 1000
"""Open connections per provider (the openai SDK's own default limit); beyond it requests queue."""

MAX_ERROR_BODY_BYTES = 64 * 1024
"""How much of an error response's body is read for its message."""

MAX_DRAIN_BYTES = 64 * 1024
"""How much of a body left after its last event is read to keep the connection for the next call."""

DRAIN_SECONDS = 5.0
"""How long the end of such a body is waited for before its connection is closed instead."""

MAX_TARGETS = 64
"""Distinct (path, extra headers) pairs whose prepared URL and headers a transport keeps."""

STREAM_HEADERS = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
"""Ask for an uncompressed event stream: a gzip-compressed body can hold chunks back until the end."""


@dataclass(slots=True, frozen=True)
class Endpoint:
    """Where and how one provider is reached; taken from its SDK client once."""

    provider: str
    """The provider's configured name, the prefix of every error message."""
    base_url: str
    """The API's base URL without a trailing slash, e.g. `https://api.openai.com/v1`."""
    headers: Mapping[str, str]
    """Headers of every request: auth, API version, user agent (never logged)."""
    secrets: tuple[str, ...]
    """Values redacted from every error message (the API key, a bearer token)."""
    timeout_seconds: float | None
    """Longest wait for the response to start and between two reads of its body."""
    connect_timeout_seconds: float | None
    """Longest wait to open a connection."""


@dataclass(slots=True, frozen=True)
class _Target:
    """What aiohttp is given for one kind of request; it copies both, never changes them."""

    url: yarl.URL
    headers: CIMultiDict[str]


def sdk_headers(client: Any) -> dict[str, str]:
    """The headers the SDK client sends on every request: its auth headers, then its defaults
    (user agent, API version, custom headers). Values the SDK omits (not strings) are dropped."""
    headers = {**client.auth_headers, **client.default_headers}
    return {name: value for name, value in headers.items() if isinstance(value, str)}


class ProviderTransport:
    """One provider's connection pool; `post_stream` sends a request and yields its body."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._draining: dict[asyncio.Task[None], aiohttp.ClientResponse] = {}
        self._targets: dict[tuple[str, tuple[tuple[str, str], ...]], _Target] = {}

    @contextlib.asynccontextmanager
    async def post_stream(
        self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> AsyncGenerator[AsyncIterator[bytes], None]:
        """POSTs `body` as JSON to `path` and yields the response body's bytes as they arrive.

        Raises `ProviderError` for an error status or a transport failure, including one that
        happens while the caller reads the body. Leaving early closes the connection, so the
        provider stops generating; a body read to its end returns the connection to the pool.
        """
        session = self._current_session()
        target = self._target(path, headers)
        with self._failures():
            response = await session.post(target.url, data=json_body(body), headers=target.headers)
            try:
                if response.status >= 400:
                    raise await self._status_error(response)
                yield response.content.iter_any()
            except BaseException:
                response.close()  # left early (cancelled, failed): the provider stops generating
                raise
            self._release(response)

    async def close(self) -> None:
        """Closes the connection pool."""
        for response in self._draining.values():
            response.close()  # ends its drain task's read
        if self._draining:
            await asyncio.gather(*self._draining, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _release(self, response: aiohttp.ClientResponse) -> None:
        """Returns the connection of a response its reader is done with to the pool.

        A reader stops at the stream's last event (`[DONE]`, `message_stop`); the end of the HTTP body
        often follows in a later packet. Waiting for it would delay the end of every model call, and
        closing the connection would make the next call pay a new TCP and TLS handshake, so the rest
        is read in the background (bounded) and the connection released then.
        """
        if response.content.is_eof():
            response.release()
            return
        task = asyncio.get_running_loop().create_task(_drain_and_release(response))
        self._draining[task] = response
        task.add_done_callback(self._draining.pop)

    def _target(self, path: str, headers: Mapping[str, str]) -> _Target:
        """The parsed URL and merged headers of requests to `path` with these extra `headers`, made
        once: aiohttp parses a string URL and converts a dict of headers on every request, ~30 µs
        of the critical path of each model call with the SDK's dozen headers (`make bench`)."""
        key = (path, tuple(headers.items()))
        target = self._targets.get(key)
        if target is None:
            endpoint = self.endpoint
            target = _Target(
                yarl.URL(endpoint.base_url + path),
                CIMultiDict({**endpoint.headers, **headers, **STREAM_HEADERS}),
            )
            if len(self._targets) >= MAX_TARGETS:
                self._targets.clear()
            self._targets[key] = target
        return target

    def _current_session(self) -> aiohttp.ClientSession:
        """The pool of the running event loop (made on first use: a session belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            endpoint = self.endpoint
            self._session = aiohttp.ClientSession(
                # The system's trusted CAs, as the SDKs' httpx2 (truststore) uses on Linux.
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=ssl.create_default_context()),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=endpoint.connect_timeout_seconds,
                    sock_read=endpoint.timeout_seconds,
                ),
                auto_decompress=True,
                proxy=environment_proxy(endpoint.base_url),
            )
            self._session_loop = loop
        return self._session

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        endpoint = self.endpoint
        try:
            yield
        except aiohttp.ServerTimeoutError:
            raise provider_errors.error_for_timeout(
                provider=endpoint.provider, seconds=endpoint.timeout_seconds
            ) from None
        except aiohttp.ClientError as error:
            raise provider_errors.error_for_connection(
                provider=endpoint.provider, what=type(error).__name__
            ) from None

    async def _status_error(self, response: aiohttp.ClientResponse) -> ProviderError:
        raw = bytearray()
        while len(raw) < MAX_ERROR_BODY_BYTES:
            piece = await response.content.read(MAX_ERROR_BODY_BYTES - len(raw))
            if not piece:
                break
            raw += piece
        text = raw.decode("utf-8", errors="replace")
        try:
            parsed: object = json.loads(text)
        except ValueError:
            parsed = None
        endpoint = self.endpoint
        return provider_errors.error_for_status(
            response.status,
            provider_message(parsed, text or response.reason or ""),
            provider=endpoint.provider,
            retry_after=provider_errors.retry_after_seconds(response.headers),
            secrets=endpoint.secrets,
            error_type=provider_error_type(parsed),
        )


def json_body(body: Mapping[str, Any]) -> bytes:
    """`body` as compact UTF-8 JSON. Every model round sends the whole conversation again, tool
    results and all, so this runs on each call's critical path (and before the next request after a
    tool result): orjson takes ~1/10 of `json.dumps`'s time. What orjson refuses (a lone surrogate from
    a `\\ud800` escape in a tool schema, an integer past 64 bits) goes out through `json.dumps` with
    ASCII escapes instead, which any input survives."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body).encode()


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY), as
    the SDKs' httpx honours them. Looked up once per pool: aiohttp's own `trust_env` looks it up (and
    `.netrc`) in a worker thread on every request, two thread hops per model call."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


def provider_error_type(body: object) -> str | None:
    """The error's `type` (or else `code`) from an error body: `{"error": {"type": ...}}`."""
    error = _error_object(body)
    for field in ("type", "code"):
        if isinstance(error.get(field), str):
            return str(error[field])
    return None


def provider_message(body: object, fallback: str) -> str:
    """The provider's own message from an error body: `{"error": {"message": ...}}` (both APIs)."""
    message = _error_object(body).get("message")
    return message if isinstance(message, str) else fallback


def _error_object(body: object) -> Mapping[str, object]:
    """The error object of a parsed error body (its `error`, else the body itself); empty if none."""
    inner = body.get("error", body) if isinstance(body, Mapping) else None
    return inner if isinstance(inner, Mapping) else {}


async def _drain_and_release(response: aiohttp.ClientResponse) -> None:
    """Reads what is left of a body (at most `MAX_DRAIN_BYTES`, for `DRAIN_SECONDS`), then releases
    its connection to the pool; a body that does not end by then closes it."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            drained = 0
            while drained <= MAX_DRAIN_BYTES and (piece := await response.content.readany()):
                drained += len(piece)
    except (TimeoutError, aiohttp.ClientError):
        pass
    finally:
        if response.content.is_eof():
            response.release()
        else:
            response.close()

"""Builds and runs the gRPC server: ChatService, health checking and reflection; the bearer token,
TLS, the listen addresses; start, graceful shutdown, stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from toolwire.server.addresses import remove_unix_socket
from toolwire.server.auth import BearerTokenInterceptor
from toolwire.server.listeners import bind
from toolwire.server.logs import SECRETS
from toolwire.server.models import config
from toolwire.server.models.config import ProviderSettings
from toolwire.server.models.registry import ModelRegistry
from toolwire.server.models.remote import RemoteProvider
from toolwire.server.models.scripted import ScriptedProvider, load_scripts
from toolwire.server.request_decoding import RequestDecodingInterceptor
from toolwire.server.servicer import ChatServicer
from toolwire.server.settings import ServerSettings
from toolwire.server.telemetry_setup import TelemetrySetup, telemetry_from_environment
from toolwire.server.workers import ANNOUNCE, HEALTH_ANNOUNCE
from toolwire.v1 import chat_pb2, chat_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = chat_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name
FLUSH_SECONDS = 2.0
"""After the drain, how long grpc may take to deliver the statuses already sent before it closes."""
HEALTH_REQUEST_BYTES = 64 * 1024
"""Largest request the health-only listener accepts: a HealthCheckRequest holds a service name."""


def default_registry(settings: ServerSettings, environment: Mapping[str, str] | None = None) -> ModelRegistry:
    """The providers a server starts with: the scripted models (built-in plus --scripts), OpenAI and
    Anthropic (usable once their key is set), and whatever the config file adds."""
    models_config = config.load(settings.config_path, os.environ if environment is None else environment)
    remote = [RemoteProvider(provider) for provider in models_config.providers]
    return ModelRegistry(
        [ScriptedProvider(load_scripts(settings.script_dirs)), *remote],
        aliases=models_config.aliases,
        retry=models_config.retry,
    )


def _tracing_interceptors(telemetry: TelemetrySetup) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    """The gRPC server spans (parents of the chat spans), when traces are exported."""
    if telemetry.tracer_provider is None:
        return []
    # Imported only when traces are exported: the instrumentation package is ~60 ms of start-up.
    from toolwire.server.grpc_spans import server_spans

    return [server_spans(telemetry.tracer_provider)]


class Server:
    """A running toolwire server."""

    def __init__(
        self,
        settings: ServerSettings,
        registry: ModelRegistry | None = None,
        telemetry: TelemetrySetup | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry or telemetry_from_environment(os.environ)
        self.registry = registry or default_registry(settings)
        SECRETS.add([settings.auth_token, *(p.api_key for p in _remote_settings(self.registry))])
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        limits = settings.limits
        self._server = grpc.aio.server(
            interceptors=[
                *_tracing_interceptors(self.telemetry),
                *_auth_interceptors(settings),
                RequestDecodingInterceptor(),
            ],
            options=[
                ("grpc.max_receive_message_length", limits.max_request_bytes),
                # Several workers (settings.workers) share each port; a single server owns its own.
                ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
            ],
        )
        servicer = ChatServicer(self.registry, settings, self.telemetry.telemetry)
        self.gate = servicer.gate
        chat_pb2_grpc.add_ChatServiceServicer_to_server(servicer, self._server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        if settings.reflection:
            reflection.enable_server_reflection(
                (
                    SERVICE_NAME,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ),
                self._server,
            )
        bound = bind(self._server, settings.listen, settings.tls)
        self.addresses = [each.announced for each in bound]
        """Where the server listens, as announced: `host:port` (the chosen port) or `unix:/path`."""
        self.port = bound[0].port
        """The first address's TCP port (0 for a Unix socket)."""
        self._unix_paths = [each.address.unix_path for each in bound if each.address.unix_path is not None]
        self._health_server, self.health_addresses = _health_only_server(self.health, settings)
        """`settings.health_listen` as announced, with the chosen ports (empty: none)."""

    async def start(self) -> None:
        """Starts serving and marks every service SERVING."""
        await self._server.start()
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        if self._health_server is not None:
            await self._health_server.start()

    async def begin_shutdown(self) -> None:
        """Marks every service NOT_SERVING so that probes and load balancers stop sending chats, and
        refuses new chats with UNAVAILABLE."""
        await self.health.enter_graceful_shutdown()
        self.gate.close()

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Shuts down gracefully: NOT_SERVING and no new chats at once; running chats may finish within
        the grace (default: the shutdown_grace_seconds setting); the rest end with UNAVAILABLE from our
        own code (a status, not a reset stream); then the server stops."""
        grace = self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        await self.begin_shutdown()
        await self.gate.drain(grace)
        await self._server.stop(FLUSH_SECONDS)
        if self._health_server is not None:  # it answered NOT_SERVING until now
            await self._health_server.stop(None)
        for path in self._unix_paths:
            remove_unix_socket(path)
        for provider in self.registry.providers:
            if isinstance(provider, RemoteProvider):
                await provider.close()
        await asyncio.to_thread(self.telemetry.shutdown)  # flushes spans and metrics still buffered

    async def wait(self) -> None:
        """Waits until the server stops."""
        await self._server.wait_for_termination()


async def serve(settings: ServerSettings, announce: bool = True) -> None:
    """Runs a server until SIGINT or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)
    server = Server(settings)
    if hasattr(signal, "SIGUSR1"):
        loop.add_signal_handler(signal.SIGUSR1, report_tasks, server)
    await server.start()
    freeze_startup_heap()
    if announce:
        lines = [ANNOUNCE + address for address in server.addresses]
        lines += [HEALTH_ANNOUNCE + address for address in server.health_addresses]
        print("\n".join(lines), flush=True)
    log.info(
        "serving on %s (%s; %s event loop)%s",
        ", ".join(server.addresses),
        describe_security(settings),
        loop_name(loop),
        f"; health checks alone on {', '.join(server.health_addresses)}" if server.health_addresses else "",
    )
    await stopping.wait()
    log.info("stopping: health NOT_SERVING, new chats refused")
    await server.stop()


GC_THRESHOLDS = (50_000, 20, 100)
"""The cyclic collector's thresholds while serving (Python's default: 700, 10, 10).

Reference counting frees a chat's objects when the chat ends; the cyclic collector only adds pauses
that walk every object still alive, the chats' included. With the default, a server at 200 paced
streams ran 154 young, 13 middle and 1 full collection in 12 s: 360 ms of pauses, up to 68 ms
each, which made the delivery lag's p99 (30-70 ms against 1.2-3 ms at p50). At 50,000 most of a
chat's objects are gone before a collection runs: 1 collection of 36 ms in the same run, lag p99
5-8 ms (10,000 gave 30-35 ms). The cost is cyclic garbage kept longer, bounded by the threshold:
`make soak` (300 concurrent chats) peaked at 174 MiB RSS against 152 with the default."""


def freeze_startup_heap() -> None:
    """Moves what start-up allocated (modules, the SDKs, the registry: the bulk of the heap) out of
    the cyclic garbage collector's reach, so a collection walks only what chats allocate, and runs
    collections less often (`GC_THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def report_tasks(server: Server) -> None:
    """On SIGUSR1: how many asyncio tasks are alive, how many chats are running, and how many memory
    blocks Python's allocator holds after a full garbage collection, in one log line. A soak compares
    them with a baseline to find tasks or objects left behind: with the collector's thresholds raised
    (GC_THRESHOLDS), garbage in reference cycles waits long for a collection, and the resident size
    keeps the allocator's high water mark of a busy moment; the blocks after a collection do neither.
    The collection pauses the server once (tens of ms on a busy one; the line says how long)."""
    started = time.perf_counter()
    gc.collect()
    collected_ms = (time.perf_counter() - started) * 1000
    log.info(
        "tasks alive: %d, chats running: %d, allocated blocks: %d (after a full collection, %.0f ms)",
        len(asyncio.all_tasks()),
        server.gate.running,
        sys.getallocatedblocks(),
        collected_ms,
    )


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """`uvloop` or `asyncio`: which event loop runs the server, for the start-up line."""
    return type(loop).__module__.partition(".")[0]


def describe_security(settings: ServerSettings) -> str:
    """TLS, token and reflection in a few words, for the start-up line (never the token itself)."""
    tls = "plaintext"
    if settings.tls is not None:
        tls = "mutual TLS" if settings.tls.mutual else "TLS"
    token = f"bearer token from ${settings.auth_token_env}" if settings.auth_token else "no token"
    return f"{tls}, {token}, reflection {'on' if settings.reflection else 'off'}"


def _health_only_server(
    health_servicer: health_pb2_grpc.HealthServicer, settings: ServerSettings
) -> tuple[grpc.aio.Server | None, list[str]]:
    """The server of `settings.health_listen` and its announced addresses: grpc.health.v1's Check
    alone, with the main server's statuses (the same servicer), in plaintext, with no token, no
    reflection and no spans, as kubelet's gRPC probe needs. (None, []) when there is no such address."""
    if not settings.health_listen:
        return None, []
    server = grpc.aio.server(
        interceptors=[RequestDecodingInterceptor()],
        options=[
            ("grpc.max_receive_message_length", HEALTH_REQUEST_BYTES),
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ],
    )
    health_pb2_grpc.add_HealthServicer_to_server(CheckOnly(health_servicer), server)
    server.add_generic_rpc_handlers((HealthOnly(),))
    return server, [each.announced for each in bind(server, settings.health_listen)]


class CheckOnly(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """grpc.health.v1 on a health-only address: Check, answered by the server's own HealthServicer;
    Watch ends with UNIMPLEMENTED. A probe needs only Check, and the address takes calls with no
    token, so nothing there may hold a stream open."""

    WATCH_MESSAGE = (
        "Watch is served on the server's listen addresses; this health-only address (health_listen) "
        "answers Check, as probes use it"
    )

    def __init__(self, health_servicer: health_pb2_grpc.HealthServicer) -> None:
        self._health = health_servicer

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        response: health_pb2.HealthCheckResponse = await self._health.Check(request, context)
        return response

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, self.WATCH_MESSAGE)


class HealthOnly(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """On a health-only address, any other method ends with UNIMPLEMENTED and a message saying where
    it is served, instead of grpc's bare "Method not found!"."""

    MESSAGE = (
        "this address serves grpc.health.v1 only (the server's health_listen): call {method} on one "
        "of the server's listen addresses"
    )

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any]:
        message = self.MESSAGE.format(method=handler_call_details.method)

        async def refuse(requests: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

        return grpc.stream_stream_rpc_method_handler(refuse)


def _auth_interceptors(settings: ServerSettings) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    if settings.auth_token is None:
        return []
    return [BearerTokenInterceptor(settings.auth_token, settings.auth_token_env)]


def _remote_settings(registry: ModelRegistry) -> list[ProviderSettings]:
    return [provider.settings for provider in registry.providers if isinstance(provider, RemoteProvider)]

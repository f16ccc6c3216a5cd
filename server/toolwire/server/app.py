"""Builds and runs the gRPC server: ChatService, health checking and reflection."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from toolwire.server.addresses import parse_address
from toolwire.server.models import config
from toolwire.server.models.registry import ModelRegistry
from toolwire.server.models.remote import RemoteProvider
from toolwire.server.models.scripted import ScriptedProvider, load_scripts
from toolwire.server.servicer import ChatServicer
from toolwire.server.settings import ServerSettings
from toolwire.server.telemetry_setup import TelemetrySetup, telemetry_from_environment
from toolwire.v1 import chat_pb2, chat_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = chat_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name


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
    interceptor: grpc.aio.ServerInterceptor[Any, Any] = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=telemetry.tracer_provider
    )
    return [interceptor]


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
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        limits = settings.limits
        self._server = grpc.aio.server(
            interceptors=_tracing_interceptors(self.telemetry),
            options=[
                ("grpc.max_receive_message_length", limits.max_request_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        servicer = ChatServicer(self.registry, settings, self.telemetry.telemetry)
        chat_pb2_grpc.add_ChatServiceServicer_to_server(servicer, self._server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self._server,
        )
        try:
            self.port = self._server.add_insecure_port(settings.listen)
        except RuntimeError:  # grpc's way of saying the bind failed
            self.port = 0
        if self.port == 0:
            raise OSError(
                f"could not listen on {settings.listen}: the address is in use or not available here"
            )

    async def start(self) -> None:
        """Starts serving and marks every service SERVING."""
        await self._server.start()
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def begin_shutdown(self) -> None:
        """Marks every service NOT_SERVING so that probes and load balancers stop sending chats."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Marks the server NOT_SERVING, then stops it, letting running chats finish within the grace."""
        await self.begin_shutdown()
        await self._server.stop(grace_seconds)
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
    await server.start()
    if announce:
        print(f"toolwire listening on {parse_address(settings.listen).grpc_target(server.port)}", flush=True)
    await stopping.wait()
    log.info("stopping")
    await server.stop()

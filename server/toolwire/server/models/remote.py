"""Providers reached over HTTP: one transport per configured provider, one adapter per wire API.

The official SDK of a provider's wire API decides its URL and headers. It is imported only for a
provider that can be used (its key is set, or it needs none), when the server starts: importing
openai and anthropic takes ~3 s here, three quarters of a server's start-up, and a server that
serves no such provider (the scripted models, or an OpenAI key only) should not pay for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from toolwire.server.errors import FailedPrecondition
from toolwire.server.models.anthropic_messages import AnthropicModel
from toolwire.server.models.base import Model, ModelInfo
from toolwire.server.models.config import ProviderSettings
from toolwire.server.models.openai_chat import OpenAIChatModel
from toolwire.server.models.transport import Endpoint, ProviderTransport, sdk_headers

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from openai import AsyncOpenAI

_API_NAMES = {"openai": "Chat Completions API", "anthropic": "Messages API"}
_NO_KEY = "not-needed"  # the SDKs insist on a key; local servers ignore it


class RemoteProvider:
    """A provider from the configuration: its transport (and connection pool) is made on first use,
    from the official SDK client of its wire API, which decides the URL and headers."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self._transport: ProviderTransport | None = None
        self._endpoint = self._make_endpoint() if self.usable else None
        """Made now, so that the SDK is imported at start-up, never on the event loop mid-serving."""

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def usable(self) -> bool:
        """False when the provider needs a key that is not set."""
        return bool(self.settings.api_key) or not self.settings.key_required

    def resolve(self, model_name: str) -> Model:
        settings = self.settings
        if not self.usable:
            raise FailedPrecondition(
                f"provider {settings.name!r} has no API key: set {settings.api_key_env} in the "
                "toolwire server's environment (or api_key_env in its config file)"
            )
        if settings.wire_api == "anthropic":
            return AnthropicModel(self.transport(), model_name, settings.anthropic)
        return OpenAIChatModel(self.transport(), model_name, settings.quirks)

    def list_models(self) -> list[ModelInfo]:
        if not self.usable:
            return []
        settings = self.settings
        where = settings.base_url or "the public API"
        description = f"{_API_NAMES[settings.wire_api]} at {where}"
        return [
            ModelInfo(f"{settings.name}/{model}", settings.name, description) for model in settings.models
        ]

    async def close(self) -> None:
        """Closes the connection pool."""
        if self._transport is not None:
            await self._transport.close()

    def transport(self) -> ProviderTransport:
        """The provider's transport, made on first use."""
        if self._transport is None:
            self._transport = ProviderTransport(self._endpoint or self._make_endpoint())
        return self._transport

    def _make_endpoint(self) -> Endpoint:
        settings = self.settings
        client = _sdk_client(settings.wire_api, settings.api_key or _NO_KEY, settings.base_url)
        return Endpoint(
            provider=settings.name,
            base_url=str(client.base_url).rstrip("/"),
            headers=sdk_headers(client),
            secrets=_secrets(settings.api_key, client.auth_headers),
            timeout_seconds=settings.timeout_seconds,
            connect_timeout_seconds=settings.connect_timeout_seconds,
        )


def _sdk_client(wire_api: str, api_key: str, base_url: str | None) -> AsyncOpenAI | AsyncAnthropic:
    """The official SDK's async client for `wire_api`; its package is imported here (module doc)."""
    if wire_api == "anthropic":
        import anthropic

        return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url)
    import openai

    return openai.AsyncOpenAI(api_key=api_key, base_url=base_url)


def _secrets(api_key: str | None, auth_headers: Mapping[str, object]) -> tuple[str, ...]:
    """What to redact from every error: the key, and whatever credential the SDK's auth headers carry
    (a bearer token it took from the environment, say)."""
    credentials = (str(value).removeprefix("Bearer ") for value in auth_headers.values())
    return tuple(secret for secret in (api_key, *credentials) if secret)

"""Providers reached over HTTP: one SDK client per configured provider, one adapter per wire API."""

from __future__ import annotations

import anthropic
import httpx2
import openai

from toolwire.server.errors import FailedPrecondition
from toolwire.server.models.anthropic_messages import AnthropicModel
from toolwire.server.models.base import Model, ModelInfo
from toolwire.server.models.config import ProviderSettings
from toolwire.server.models.openai_chat import OpenAIChatModel

_API_NAMES = {"openai": "Chat Completions API", "anthropic": "Messages API"}
_NO_KEY = "not-needed"  # the SDKs insist on a key; local servers ignore it


class RemoteProvider:
    """A provider from the configuration; its SDK client (and connection pool) is made on first use."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self._openai: openai.AsyncOpenAI | None = None
        self._anthropic: anthropic.AsyncAnthropic | None = None

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
            return AnthropicModel(self._anthropic_client(), settings.name, model_name, settings.anthropic)
        return OpenAIChatModel(self._openai_client(), settings.name, model_name, settings.quirks)

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
        """Closes the SDK clients' connection pools."""
        for client in (self._openai, self._anthropic):
            if client is not None:
                await client.close()

    def _timeout(self) -> httpx2.Timeout:
        settings = self.settings
        return httpx2.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds)

    def _openai_client(self) -> openai.AsyncOpenAI:
        if self._openai is None:
            self._openai = openai.AsyncOpenAI(
                api_key=self.settings.api_key or _NO_KEY,
                base_url=self.settings.base_url,
                max_retries=0,  # retries are ours (models/resilience.py): one policy for every provider
                timeout=self._timeout(),
            )
        return self._openai

    def _anthropic_client(self) -> anthropic.AsyncAnthropic:
        if self._anthropic is None:
            self._anthropic = anthropic.AsyncAnthropic(
                api_key=self.settings.api_key or _NO_KEY,
                base_url=self.settings.base_url,
                max_retries=0,
                timeout=self._timeout(),
            )
        return self._anthropic

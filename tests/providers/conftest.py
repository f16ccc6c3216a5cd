"""A fake provider on loopback and the adapters' SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest

from tests.fakes.provider import FakeProvider
from toolwire.server.conversation import GenerationOptions, Message, ModelCall, Role, ToolDefinition
from toolwire.server.models.config import ProviderSettings
from toolwire.server.models.remote import RemoteProvider

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"

WEATHER = ToolDefinition(
    "get_weather",
    "Current weather for a place.",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)


def model_call(*messages: Message, tools=(WEATHER,), options: GenerationOptions | None = None) -> ModelCall:
    messages = messages or (Message(Role.USER, "What is the weather in Paris?"),)
    return ModelCall(messages, tuple(tools), options or GenerationOptions(), round=1)


def provider_settings(wire_api: str, url: str, **changes) -> ProviderSettings:
    settings = ProviderSettings(
        name=wire_api,
        wire_api=wire_api,
        api_key=OPENAI_KEY if wire_api == "openai" else ANTHROPIC_KEY,
        api_key_env="OPENAI_API_KEY" if wire_api == "openai" else "ANTHROPIC_API_KEY",
        key_required=True,
        base_url=f"{url}/v1" if wire_api == "openai" else url,
        models=("test-model",),
        timeout_seconds=5.0,
        connect_timeout_seconds=2.0,
    )
    return replace(settings, **changes)


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """A fresh fake provider (its own thread and port) for each test."""
    with FakeProvider() as running:
        yield running


@pytest.fixture
async def openai_provider(fake_provider) -> AsyncIterator[RemoteProvider]:
    provider = RemoteProvider(provider_settings("openai", fake_provider.url))
    yield provider
    await provider.close()


@pytest.fixture
async def anthropic_provider(fake_provider) -> AsyncIterator[RemoteProvider]:
    provider = RemoteProvider(provider_settings("anthropic", fake_provider.url))
    yield provider
    await provider.close()

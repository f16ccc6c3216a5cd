"""Drives `ChatSessions` in memory: a fake client stream, inline scripts, and an answering policy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from toolwire.server.chat_events import ChatEvent, ChatFinished, ToolRequestOut
from toolwire.server.conversation import (
    ChatRequest,
    GenerationOptions,
    Message,
    Role,
    ToolDefinition,
    ToolResult,
)
from toolwire.server.models.registry import ModelRegistry
from toolwire.server.models.scripted import ScriptedProvider, parse_script
from toolwire.server.session import ChatSessions
from toolwire.server.settings import ServerSettings

WEATHER_TOOL = ToolDefinition(
    "get_weather",
    "Current weather for a place.",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)
TIME_TOOL = ToolDefinition(
    "get_time", "Local time in a city.", {"type": "object", "properties": {"city": {"type": "string"}}}
)

Answer = Callable[[ToolRequestOut, "FakeStream"], Awaitable[None]]


def chat_request(model: str, *, tools=(WEATHER_TOOL, TIME_TOOL), **overrides) -> ChatRequest:
    values = {
        "model": model,
        "messages": (Message(Role.USER, "What is the weather in Paris?"),),
        "tools": tuple(tools),
        "max_tool_rounds": 10,
        "tool_timeout_seconds": 5.0,
        "stream_tool_arguments": False,
        "options": GenerationOptions(),
    }
    values.update(overrides)
    return ChatRequest(**values)


async def answer_sunny(request: ToolRequestOut, stream: FakeStream) -> None:
    await stream.client_sends(ToolResult(request.tool_call_id, f"sunny ({request.arguments_json})"))


@dataclass
class FakeStream:
    """The client side of one chat: a queue of client messages, a list of what the server sent."""

    answer: Answer | None = answer_sunny
    sent: list[ChatEvent] = field(default_factory=list)
    inbox: asyncio.Queue[ChatRequest | ToolResult | None] = field(default_factory=asyncio.Queue)
    sent_event: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self) -> ChatRequest | ToolResult | None:
        return await self.inbox.get()

    async def send(self, event: ChatEvent) -> None:
        self.sent.append(event)
        self.sent_event.set()
        if isinstance(event, ToolRequestOut) and self.answer is not None:
            await self.answer(event, self)

    async def client_sends(self, message: ChatRequest | ToolResult | None) -> None:
        await self.inbox.put(message)

    def of_type(self, kind: type) -> list:
        return [event for event in self.sent if isinstance(event, kind)]


class Harness:
    """Inline scripts served as scripted/<name>, and a helper to run one chat."""

    def __init__(self, scripts: dict[str, dict], settings: ServerSettings | None = None) -> None:
        self.provider = ScriptedProvider(
            {name: parse_script(name, body, name) for name, body in scripts.items()}
        )
        self.sessions = ChatSessions(ModelRegistry([self.provider]), settings or ServerSettings())

    async def run(
        self, request: ChatRequest, stream: FakeStream | None = None
    ) -> tuple[ChatFinished, FakeStream]:
        stream = stream or FakeStream()
        await stream.client_sends(request)
        finished = await asyncio.wait_for(self.sessions.run(stream), 10)
        return finished, stream


def tool_call(index, tool_call_id=None, name=None, arguments=None) -> dict:
    body = {"index": index}
    body.update(
        {k: v for k, v in (("id", tool_call_id), ("name", name), ("arguments", arguments)) if v is not None}
    )
    return {"tool_call": body}

"""The Python client for toolwire: stream a model's answer and run its tool calls in this process.

Example::

    import asyncio
    from toolwire.client import Client, Finish, TextDelta, tool

    @tool
    def get_weather(location: str) -> dict[str, str]:
        \"\"\"Gets the current weather in a city, e.g. "Paris".\"\"\"
        return {"location": location, "sky": "sunny"}

    async def main() -> None:
        async with Client("127.0.0.1:50051") as client:
            async for event in client.chat("scripted/weather", "Weather in Paris?", tools=[get_weather]):
                if isinstance(event, TextDelta):
                    print(event.text, end="", flush=True)
                elif isinstance(event, Finish):
                    print(f"\\n[{event.reason}, tools called: {event.tools_called}]")

    asyncio.run(main())

`tool` derives the JSON Schema from the type hints and the descriptions from the docstring (a
Google-style `Args:` section describes each parameter). `Client.run()` returns just the `Finish`
event; `Client.chat_session()` lets the caller answer tool calls itself with `send_result()`.
Every non-OK gRPC status is raised as `ToolwireError`.

The final `Finish` repeats every message the chat appended, tool results included, so it can be
larger than gRPC's default receive limit of 4 MiB: a `Client` accepts messages up to 64 MiB
(`DEFAULT_MAX_RECEIVE_MESSAGE_BYTES`; change it with `Client(..., max_receive_message_bytes=...)`).
A channel you pass in (`Client(channel=...)`) keeps its own limit: open it with
`options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]`.
"""

from toolwire.client.client import (
    DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
    ChatOptions,
    Client,
    MessagesLike,
    ModelInfo,
    ToolLike,
)
from toolwire.client.errors import ToolwireError
from toolwire.client.events import (
    Event,
    Finish,
    Message,
    Started,
    TextDelta,
    ToolArgumentsDelta,
    ToolCall,
    ToolCallAbandoned,
    ToolCallRejected,
    ToolRequest,
    ToolResultSent,
    Usage,
    event_from_proto,
)
from toolwire.client.schema import Tool, tool
from toolwire.client.session import ChatSession

__all__ = [
    "DEFAULT_MAX_RECEIVE_MESSAGE_BYTES",
    "ChatOptions",
    "ChatSession",
    "Client",
    "Event",
    "Finish",
    "Message",
    "MessagesLike",
    "ModelInfo",
    "Started",
    "TextDelta",
    "Tool",
    "ToolArgumentsDelta",
    "ToolCall",
    "ToolCallAbandoned",
    "ToolCallRejected",
    "ToolLike",
    "ToolRequest",
    "ToolResultSent",
    "ToolwireError",
    "Usage",
    "event_from_proto",
    "tool",
]

"""The get-weather example: stream an answer, run the model's tool call locally, print the summary.

python examples/python/weather/weather.py [--target HOST:PORT] [--model scripted/weather]

The target defaults to $TOOLWIRE_TARGET, else 127.0.0.1:50051 (where `make run` listens).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from toolwire.client import Client, Finish, TextDelta, ToolRequest, ToolResultSent, tool


@tool
def get_weather(location: str) -> dict[str, object]:
    """Current weather for a place.

    Args:
        location: A city name, e.g. "Paris".
    """
    return {"location": location, "sky": "sunny", "celsius": 21}


async def main(target: str, model: str) -> Finish:
    """Runs one chat and prints what happens; returns the summary."""
    async with Client(target) as client:
        async for event in client.chat(model, "What is the weather in Paris?", tools=[get_weather]):
            if isinstance(event, TextDelta):
                print(event.text, end="", flush=True)
            elif isinstance(event, ToolRequest):
                print(f"\n[tool] {event.name}({event.arguments_json})")
            elif isinstance(event, ToolResultSent):
                print(f"[tool] -> {event.content}")
            elif isinstance(event, Finish):
                print(
                    f"\n[done] {event.reason}: {event.rounds} model calls, tools {event.tools_called}, "
                    f"{event.chunks_received} chunks, {event.duration_seconds * 1000:.0f} ms"
                )
                return event
    raise RuntimeError("the chat ended without a finish event")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=os.environ.get("TOOLWIRE_TARGET", "127.0.0.1:50051"))
    parser.add_argument("--model", default="scripted/weather")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.target, arguments.model))

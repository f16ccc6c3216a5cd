"""The floor: the least a relay can do with the same libraries as toolwire (grpc.aio, aiohttp, uvloop).

    python bench/floor_server.py PROVIDER_PORT      # prints "floor listening on 127.0.0.1:PORT"

It serves `toolwire.v1.ChatService/Chat` well enough for the benchmark's load generator and nothing
more: it posts the chat to the fake provider's OpenAI endpoint, finds each `"content":"…"` in the
stream with a byte search (no JSON parse, no events, no validation, no telemetry, no tool-call
assembly), writes it as one TextDelta per provider chunk, sends a ToolRequest when the stream asks
for the tool, and posts the follow-up request the moment the ToolResult arrives. Whatever this costs
per chunk, per chat and per tool round trip on this machine, any relay built on grpcio and aiohttp
costs at least as much; the report sets toolwire's figures beside it, measured in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python" / "src"))
from toolwire.v1 import chat_pb2, chat_pb2_grpc

_CONTENT = b'"content":"'
_TOOL_ASKED = b'"finish_reason":"tool_calls"'


def _texts(data: bytes) -> list[str]:
    """The `content` strings in a piece of the provider's stream (the fake provider never escapes them)."""
    texts = []
    start = data.find(_CONTENT)
    while start >= 0:
        start += len(_CONTENT)
        end = data.index(b'"', start)
        if end > start:
            texts.append(data[start:end].decode())
        start = data.find(_CONTENT, end)
    return texts


class FloorServicer(chat_pb2_grpc.ChatServiceServicer):
    """Relays text and one tool round; see the module doc."""

    def __init__(self, provider_url: str) -> None:
        self._provider_url = provider_url
        self._session: aiohttp.ClientSession | None = None

    async def Chat(self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        start = (await context.read()).start
        model = start.model.partition("/")[2]
        messages: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
        while True:
            body = {"model": model, "messages": messages, "stream": True, "tools": [{"type": "function"}]}
            tool_asked = False
            async with self._session.post(self._provider_url, json=body) as response:
                pending = b""
                async for data in response.content.iter_any():
                    pending += data
                    cut = pending.rfind(b"\n\n") + 2
                    if cut < 2:
                        continue
                    complete, pending = pending[:cut], pending[cut:]
                    for text in _texts(complete):
                        await context.write(chat_pb2.ChatResponse(text_delta=chat_pb2.TextDelta(text=text)))
                    tool_asked = tool_asked or _TOOL_ASKED in complete
            if not tool_asked:
                break
            request = chat_pb2.ToolRequest(
                tool_call_id="call_bench", name="get_value", arguments_json='{"n": 1}'
            )
            await context.write(chat_pb2.ChatResponse(tool_request=request))
            result = (await context.read()).tool_result
            messages += [
                {"role": "assistant", "tool_calls": [{"id": "call_bench", "type": "function"}]},
                {"role": "tool", "tool_call_id": result.tool_call_id, "content": result.content},
            ]
        await context.write(chat_pb2.ChatResponse(finish=chat_pb2.ChatFinish(text="")))


async def main(provider_port: int) -> None:
    server = grpc.aio.server()
    chat_pb2_grpc.add_ChatServiceServicer_to_server(
        FloorServicer(f"http://127.0.0.1:{provider_port}/v1/chat/completions"), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"floor listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))

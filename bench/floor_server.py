"""The floor: the least a relay can do with the same libraries as toolwire (grpc.aio, aiohttp, uvloop).

    python bench/floor_server.py PROVIDER_PORT [LEGS_FILE]   # prints "floor listening on 127.0.0.1:PORT"

It serves `toolwire.v1.ChatService/Chat` well enough for the benchmark's load generator and nothing
more: it posts the chat to the fake provider's OpenAI endpoint, finds each `"content":"…"` in the
stream with a byte search (no JSON parse, no events, no validation, no telemetry, no tool-call
assembly), writes it as one TextDelta per provider chunk, sends a ToolRequest when the stream asks
for the tool, and posts the follow-up request the moment the ToolResult arrives. Whatever this costs
per chunk, per chat and per tool round trip on this machine, any relay built on grpcio and aiohttp
costs at least as much; the report sets toolwire's figures beside it, measured in the same run.

With LEGS_FILE, it splits each tool round trip in two where only a relay can see it: a ToolResult
whose content is `{"sent_ns": N}` (the load generator's `-stamp-tool-results`) is stamped when
`context.read()` returns it, and the fake provider's `R<arrival>|` opens the follow-up response. One
JSON line a round goes to LEGS_FILE: `grpc_ms`, client's send to the relay's read (gRPC: HTTP/2 on
loopback, grpc core's threads, the hop to the asyncio loop), and `http_ms`, the relay's read to the
request's arrival at the provider (aiohttp and the provider's loop).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python" / "src"))
from toolwire.v1 import chat_pb2, chat_pb2_grpc

_CONTENT = b'"content":"'
_TOOL_ASKED = b'"finish_reason":"tool_calls"'
_ARRIVAL = re.compile(rb'"content":"R(\d+)\|')


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

    def __init__(self, provider_url: str, legs_file: Path | None = None) -> None:
        self._provider_url = provider_url
        self._session: aiohttp.ClientSession | None = None
        self._legs_file = legs_file

    async def Chat(self, request_iterator: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        start = (await context.read()).start
        model = start.model.partition("/")[2]
        messages: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
        stamps: tuple[int, int] | None = None  # (sent_ns, read_ns) of a stamped ToolResult
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
                    if stamps is not None:
                        self._write_legs(stamps, complete)
                        stamps = None
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
            if self._legs_file is not None:
                stamps = _sent_ns(result.content), time.time_ns()
            messages += [
                {"role": "assistant", "tool_calls": [{"id": "call_bench", "type": "function"}]},
                {"role": "tool", "tool_call_id": result.tool_call_id, "content": result.content},
            ]
        await context.write(chat_pb2.ChatResponse(finish=chat_pb2.ChatFinish(text="")))

    def _write_legs(self, stamps: tuple[int, int], first: bytes) -> None:
        """Appends one round's legs (module doc), if the result was stamped and the response says when
        its request arrived."""
        sent, read = stamps
        arrival = _ARRIVAL.search(first)
        if sent and arrival and self._legs_file is not None:
            legs = {"grpc_ms": (read - sent) / 1e6, "http_ms": (int(arrival[1]) - read) / 1e6}
            with self._legs_file.open("a") as file:
                file.write(json.dumps(legs) + "\n")


def _sent_ns(content: str) -> int:
    """The `sent_ns` of a stamped ToolResult's content; 0 for any other content."""
    try:
        sent = json.loads(content).get("sent_ns", 0)
    except (ValueError, AttributeError):
        return 0
    return sent if isinstance(sent, int) else 0


async def main(provider_port: int, legs_file: Path | None = None) -> None:
    server = grpc.aio.server()
    chat_pb2_grpc.add_ChatServiceServicer_to_server(
        FloorServicer(f"http://127.0.0.1:{provider_port}/v1/chat/completions", legs_file), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"floor listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None))

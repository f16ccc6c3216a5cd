"""The benchmark's fake LLM provider: OpenAI Chat Completions and Anthropic Messages SSE on loopback.

Run it in a process of its own: `python bench/fake_provider.py [--port 0]`; it prints
`fake provider listening on PORT` once bound. HTTP/1.1 with keep-alive (the SDKs pool connections),
chunked transfer encoding, written on raw asyncio transports (uvloop when installed) so that the
fake costs as little CPU as possible on the machine it shares with what it measures.

The scenario is chosen by the request's model name, so every consumer (the SDK directly, toolwire,
LiteLLM's proxy) can select it:

    bench-<N>x<P>[ms][-tool]     N text chunks, P ms apart (0: flat out);
                                 -tool: then a tool call `get_value`, unless the last message is
                                 already a tool result (then the N chunks and stop)

Every text chunk is `<seq>@<send time_ns>|`, and the first chunk of each response starts with
`R<arrival time_ns of the request>|`, so a consumer computes exact delivery lag, gaps, order and the
time from its last tool result to the next request reaching the provider, without a side channel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from dataclasses import dataclass

SCENARIO = re.compile(r"^(?:[\w.-]+/)?bench-(\d+)x(\d+)(?:ms)?(-tool)?$")


@dataclass(slots=True, frozen=True)
class Scenario:
    chunks: int
    interval_s: float
    tool: bool


def scenario(model: str) -> Scenario | None:
    match = SCENARIO.match(model)
    if match is None:
        return None
    return Scenario(int(match[1]), int(match[2]) / 1000, bool(match[3]))


# --- wire formats ------------------------------------------------------------------------------


def _chunk(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class OpenAIFormat:
    """`chat.completion.chunk` lines shaped like OpenAI's own (ids, fingerprint, obfuscation)."""

    path = "/v1/chat/completions"

    def __init__(self, model: str) -> None:
        head = (
            '{"id":"chatcmpl-bench0000000000000000000000000","object":"chat.completion.chunk",'
            f'"created":{int(time.time())},"model":{json.dumps(model)},"service_tier":"default",'
            '"system_fingerprint":"fp_bench00000","choices":[{"index":0,"delta":'
        )
        self._head = b"data: " + head.encode()
        self._tail = b',"logprobs":null,"finish_reason":null}],"obfuscation":"abc"}\n\n'

    def _delta(self, delta: dict[str, object], finish: str | None = None) -> bytes:
        if finish is None:
            return self._head + json.dumps(delta).encode() + self._tail
        return (
            self._head
            + json.dumps(delta).encode()
            + b',"logprobs":null,"finish_reason":"'
            + finish.encode()
            + b'"}],"obfuscation":"abc"}\n\n'
        )

    def start(self) -> bytes:
        return self._delta({"role": "assistant", "content": "", "refusal": None})

    def text(self, text: str) -> bytes:
        return self._head + b'{"content":"' + text.encode() + b'"}' + self._tail

    def tool_call(self) -> bytes:
        first = {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_bench",
                    "type": "function",
                    "function": {"name": "get_value", "arguments": ""},
                }
            ]
        }
        rest = {"tool_calls": [{"index": 0, "function": {"arguments": '{"n": 1}'}}]}
        return self._delta(first) + self._delta(rest)

    def end(self, tool: bool, chunks: int) -> bytes:
        usage = (
            b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
            b'"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":%d,"total_tokens":%d}}\n\n'
            % (chunks, chunks + 20)
        )
        return self._delta({}, "tool_calls" if tool else "stop") + usage + b"data: [DONE]\n\n"

    @staticmethod
    def answered_tool(request: dict[str, object]) -> bool:
        messages = request.get("messages")
        return isinstance(messages, list) and bool(messages) and messages[-1].get("role") == "tool"


class AnthropicFormat:
    """Messages API events."""

    path = "/v1/messages"

    def __init__(self, model: str) -> None:
        self._model = model
        self._head = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,' + (
            b'"delta":{"type":"text_delta","text":"'
        )

    def start(self) -> bytes:
        message = {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 20, "output_tokens": 1},
        }
        return (
            b"event: message_start\ndata: "
            + json.dumps({"type": "message_start", "message": message}).encode()
            + b"\n\nevent: content_block_start\ndata: "
            b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
        )

    def text(self, text: str) -> bytes:
        return self._head + text.encode() + b'"}}\n\n'

    def tool_call(self) -> bytes:
        return (
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
            b"event: content_block_start\ndata: "
            b'{"type":"content_block_start","index":1,"content_block":{"type":"tool_use",'
            b'"id":"toolu_bench","name":"get_value","input":{}}}\n\n'
            b"event: content_block_delta\ndata: "
            b'{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",'
            b'"partial_json":"{\\"n\\": 1}"}}\n\n'
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":1}\n\n'
        )

    def end(self, tool: bool, chunks: int) -> bytes:
        block_stop = (
            b"" if tool else (b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n')
        )
        reason = b"tool_use" if tool else b"end_turn"
        return block_stop + (
            b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"%s",'
            b'"stop_sequence":null},"usage":{"output_tokens":%d}}\n\n'
            b'event: message_stop\ndata: {"type":"message_stop"}\n\n' % (reason, chunks)
        )

    @staticmethod
    def answered_tool(request: dict[str, object]) -> bool:
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return False
        content = messages[-1].get("content")
        return isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        )


# --- the server ------------------------------------------------------------------------------------


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, bytes, int] | None:
    """(path, body, arrival time_ns) of the next request on the connection, None at its end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1].split("?")[0]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return path, body, time.time_ns()  # the whole request has arrived


async def _respond(writer: asyncio.StreamWriter, status: str, content_type: str, body: bytes) -> None:
    writer.write(
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
        "connection: keep-alive\r\n\r\n".encode()
        + body
    )
    await writer.drain()


async def _stream(
    writer: asyncio.StreamWriter,
    wire: OpenAIFormat | AnthropicFormat,
    scene: Scenario,
    tool: bool,
    arrival: int,
) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    text = f"R{arrival}|0@{time.time_ns()}|"
    writer.write(_chunk(wire.start() + wire.text(text)))
    for seq in range(1, scene.chunks):
        if scene.interval_s:
            delay = started + seq * scene.interval_s - loop.time()  # no drift: a fixed schedule
            if delay > 0:
                await asyncio.sleep(delay)
        writer.write(_chunk(wire.text(f"{seq}@{time.time_ns()}|")))
        if writer.transport.get_write_buffer_size() > 65536:
            await writer.drain()
    tail = (wire.tool_call() if tool else b"") + wire.end(tool, scene.chunks)
    writer.write(_chunk(tail) + b"0\r\n\r\n")
    await writer.drain()


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while (request := await _read_request(reader)) is not None:
            path, body, arrival = request
            wire_class = {OpenAIFormat.path: OpenAIFormat, AnthropicFormat.path: AnthropicFormat}.get(path)
            if wire_class is None:
                await _respond(writer, "404 Not Found", "application/json", b'{"error":{"message":"no"}}')
                continue
            parsed = json.loads(body)
            model = str(parsed.get("model", ""))
            scene = scenario(model)
            if scene is None:
                message = json.dumps(
                    {"error": {"message": f"unknown bench model {model!r}", "type": "invalid_request_error"}}
                )
                await _respond(writer, "400 Bad Request", "application/json", message.encode())
                continue
            tool = scene.tool and not wire_class.answered_tool(parsed)
            await _stream(writer, wire_class(model), scene, tool, arrival)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(_serve_connection, "127.0.0.1", port, backlog=4096)
    print(f"fake provider listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    port = parser.parse_args().port
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(port))
    else:
        uvloop.run(main(port))

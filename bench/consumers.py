"""The benchmark's Python consumers (one per path) and what a stream's record adds up to.

    direct    the official openai SDK (AsyncOpenAI, stream=True) against the fake provider
    toolwire  a raw grpc.aio stub of ChatService (no client library: the least client overhead)
    litellm   the official openai SDK against LiteLLM's proxy

`interleaved` runs every path once per iteration in a shuffled order; `throughput` runs flat-out
streams and measures CPU per chunk; `parked_memory` measures the server's memory per chat waiting
on a tool. Every chunk's text carries its send time (bench/fake_provider.py), so lags and gaps are
exact: one clock, one machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

import grpc
import openai
import psutil

from bench.processes import cpu_seconds
from toolwire.v1 import chat_pb2 as pb
from toolwire.v1 import chat_pb2_grpc

TOOL_SCHEMA = json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
PATHS = ("direct", "toolwire", "litellm")
LITELLM_MAX_STREAMS = 50
"""LiteLLM's proxy is saturated long before this (seconds of lag at 50): more only makes the run longer."""


# --- one stream's record --------------------------------------------------------------------------


@dataclass
class Trace:
    """What a consumer saw of one chat: when it asked, and each text delta with its arrival time."""

    started_ns: int = 0
    deltas: list[tuple[int, str]] = field(default_factory=list)
    result_sent_ns: int = 0  # when the tool result left the consumer (0: no tool round)
    deltas_after_result: list[tuple[int, str]] = field(default_factory=list)
    error: str = ""

    def tokens(self, after_result: bool = False) -> tuple[int | None, list[tuple[int, int, int]]]:
        """(request arrival at the provider, [(seq, sent_ns, arrived_ns)]) from the deltas."""
        arrival = None
        tokens = []
        for arrived, text in self.deltas_after_result if after_result else self.deltas:
            for token in text.split("|"):
                if token.startswith("R"):
                    arrival = int(token[1:])
                elif token:
                    seq, _, sent = token.partition("@")
                    tokens.append((int(seq), int(sent), arrived))
        return arrival, tokens


# --- the three consumers ----------------------------------------------------------------------------


def _messages() -> list[dict[str, object]]:
    return [{"role": "user", "content": "Benchmark me."}]


async def consume_openai(client: openai.AsyncOpenAI, model: str) -> Trace:
    """The SDK, as a user would call it: typed chunks; a tool call answered in a second request."""
    trace = Trace()
    messages = _messages()
    tools = [{"type": "function", "function": {"name": "get_value", "parameters": json.loads(TOOL_SCHEMA)}}]
    extra = {"tools": tools} if model.endswith("-tool") else {}
    sink = trace.deltas
    trace.started_ns = time.time_ns()
    for _ in range(2):
        stream = await client.chat.completions.create(model=model, messages=messages, stream=True, **extra)
        calls: dict[int, dict[str, str]] = {}
        async for chunk in stream:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            if delta.content:
                sink.append((time.time_ns(), delta.content))
            for call in delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                entry["name"] += (call.function.name or "") if call.function else ""
                entry["arguments"] += (call.function.arguments or "") if call.function else ""
        if not calls:
            break
        text = "".join(part for _, part in sink)
        messages = [
            *messages,
            {
                "role": "assistant",
                "content": text,
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": c["arguments"]},
                    }
                    for c in calls.values()
                ],
            },
        ]
        messages += [
            {"role": "tool", "tool_call_id": c["id"], "content": '{"value": 42}'} for c in calls.values()
        ]
        sink = trace.deltas_after_result
        trace.result_sent_ns = time.time_ns()
    return trace


async def consume_toolwire(stub: chat_pb2_grpc.ChatServiceStub, model: str) -> Trace:
    """A raw stub: start, then text deltas; a ToolRequest is answered at once."""
    trace = Trace()
    tools = (
        [pb.ToolDefinition(name="get_value", parameters_json_schema=TOOL_SCHEMA)] if "-tool" in model else []
    )
    start = pb.ChatStart(
        model=model, messages=[pb.Message(role=pb.ROLE_USER, content="Benchmark me.")], tools=tools
    )
    call = stub.Chat()
    sink = trace.deltas
    trace.started_ns = time.time_ns()
    await call.write(pb.ChatRequest(start=start))
    while True:
        response = await call.read()
        if response is grpc.aio.EOF:
            break
        kind = response.WhichOneof("event")
        if kind == "text_delta":
            sink.append((time.time_ns(), response.text_delta.text))
        elif kind == "tool_request":
            sink = trace.deltas_after_result
            trace.result_sent_ns = time.time_ns()
            result = pb.ToolResult(tool_call_id=response.tool_request.tool_call_id, content='{"value": 42}')
            await call.write(pb.ChatRequest(tool_result=result))
        elif kind == "finish":
            await call.done_writing()
    status = await call.code()
    if status != grpc.StatusCode.OK:
        trace.error = f"{status.name}: {await call.details()}"
    return trace


class Consumers:
    """One client per path, made once (connection pools warm, as in a real application)."""

    def __init__(self, fake_url: str, toolwire_address: str, litellm: tuple[str, str] | None = None) -> None:
        self.direct = openai.AsyncOpenAI(api_key="bench", base_url=f"{fake_url}/v1", max_retries=0)
        self.channel = grpc.aio.insecure_channel(toolwire_address)
        self.stub = chat_pb2_grpc.ChatServiceStub(self.channel)
        self.litellm = (
            openai.AsyncOpenAI(api_key=litellm[1], base_url=litellm[0], max_retries=0, timeout=120)
            if litellm
            else None
        )

    def paths(self, concurrency: int = 1) -> list[str]:
        with_litellm = self.litellm is not None and concurrency <= LITELLM_MAX_STREAMS
        return [path for path in PATHS if path != "litellm" or with_litellm]

    def run(self, path: str, scenario: str) -> Awaitable[Trace]:
        if path == "direct":
            return consume_openai(self.direct, scenario)
        if path == "toolwire":
            return consume_toolwire(self.stub, f"openai/{scenario}")
        assert self.litellm is not None
        return consume_openai(self.litellm, scenario)

    async def close(self) -> None:
        await self.direct.close()
        await self.channel.close()
        if self.litellm is not None:
            await self.litellm.close()


# --- statistics -------------------------------------------------------------------------------------


@dataclass
class Figures:
    ttft_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)  # arrival - send, every chunk
    first_lag_ms: list[float] = field(default_factory=list)  # arrival - send, first chunk
    gap_jitter_ms: list[float] = field(default_factory=list)  # (arrival gap) - (send gap)
    tool_ms: list[float] = field(default_factory=list)  # result sent -> next request at the provider
    lost_or_reordered: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, trace: Trace, chunks: int) -> None:
        if trace.error:
            self.errors.append(trace.error)
            return
        _, tokens = trace.tokens()
        if [seq for seq, _, _ in tokens] != list(range(chunks)):
            self.lost_or_reordered += 1
        if tokens:
            self.ttft_ms.append((tokens[0][2] - trace.started_ns) / 1e6)
            self.first_lag_ms.append((tokens[0][2] - tokens[0][1]) / 1e6)
        for index, (_, sent, arrived) in enumerate(tokens):
            self.lag_ms.append((arrived - sent) / 1e6)
            if index:
                _, sent0, arrived0 = tokens[index - 1]
                self.gap_jitter_ms.append(((arrived - arrived0) - (sent - sent0)) / 1e6)
        if trace.result_sent_ns:
            arrival, after = trace.tokens(after_result=True)
            if arrival is not None:
                self.tool_ms.append((arrival - trace.result_sent_ns) / 1e6)
            if [seq for seq, _, _ in after] != list(range(chunks)):
                self.lost_or_reordered += 1


def chunks_of(scenario: str) -> int:
    return int(re.search(r"bench-(\d+)x", scenario)[1])  # type: ignore[index]


# --- the phases -------------------------------------------------------------------------------------


async def interleaved(
    consumers: Consumers, scenario: str, iterations: int, concurrency: int = 1
) -> dict[str, Figures]:
    """Each iteration runs every path once (in a shuffled order), `concurrency` streams at a time."""
    figures = {path: Figures() for path in consumers.paths(concurrency)}
    for _ in range(iterations):
        order = consumers.paths(concurrency)
        random.shuffle(order)
        for path in order:
            traces = await asyncio.gather(
                *(consumers.run(path, scenario) for _ in range(concurrency)), return_exceptions=True
            )
            for trace in traces:
                if isinstance(trace, BaseException):
                    figures[path].errors.append(repr(trace)[:200])
                else:
                    figures[path].add(trace, chunks_of(scenario))
    return figures


async def throughput(
    consumers: Consumers, path: str, pid: int | None, streams: int, chunks: int
) -> dict[str, float]:
    """Flat-out streams: relayed chunks per second, and CPU per chunk of the relay (or the consumer)."""
    scenario = f"bench-{chunks}x0"
    me = os.getpid()
    before = (cpu_seconds(pid) if pid else 0.0, cpu_seconds(me))
    started = time.perf_counter()
    traces = await asyncio.gather(*(consumers.run(path, scenario) for _ in range(streams)))
    wall = time.perf_counter() - started
    after = (cpu_seconds(pid) if pid else 0.0, cpu_seconds(me))
    relayed = sum(len(trace.tokens()[1]) for trace in traces)
    messages = sum(len(trace.deltas) for trace in traces)
    return {
        "chunks_per_s": relayed / wall,
        "relay_cpu_us": (after[0] - before[0]) / relayed * 1e6 if pid else float("nan"),
        "consumer_cpu_us": (after[1] - before[1]) / relayed * 1e6,
        "chunks_per_message": relayed / max(1, messages),
    }


async def parked_memory(stub: chat_pb2_grpc.ChatServiceStub, pid: int, chats: int) -> float:
    """Bytes of server RSS per chat parked on a ToolRequest (warm-up first; results sent after)."""

    async def park(gate: asyncio.Event, ready: list[int]) -> None:
        call = stub.Chat()
        tools = [pb.ToolDefinition(name="get_value", parameters_json_schema=TOOL_SCHEMA)]
        message = pb.Message(role=pb.ROLE_USER, content="Benchmark me.")
        await call.write(
            pb.ChatRequest(start=pb.ChatStart(model="openai/bench-4x0-tool", messages=[message], tools=tools))
        )
        while (response := await call.read()) is not grpc.aio.EOF:
            if response.WhichOneof("event") == "tool_request":
                ready.append(1)
                await gate.wait()
                result = pb.ToolResult(tool_call_id=response.tool_request.tool_call_id, content="{}")
                await call.write(pb.ChatRequest(tool_result=result))
            elif response.WhichOneof("event") == "finish":
                await call.done_writing()

    async def round_of(count: int) -> float:
        gate, ready = asyncio.Event(), []
        baseline = psutil.Process(pid).memory_info().rss
        tasks = [asyncio.create_task(park(gate, ready)) for _ in range(count)]
        while len(ready) < count:  # noqa: ASYNC110 (the chats report by appending; a poll is enough)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        grown = psutil.Process(pid).memory_info().rss - baseline
        gate.set()
        await asyncio.gather(*tasks)
        return grown / count

    await round_of(min(chats, 200))  # warm-up: allocator arenas, grpc's pools
    return await round_of(chats)

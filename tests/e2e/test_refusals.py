"""Chats a real `toolwire serve` process refuses at their start (past the cap, without the token) reach
a grpcio asyncio client with that status, never INTERNAL: the client writes its start, then reads,
as toolwire's Python client does. Refused before the server had read the start, 2-19 of 200 such
chats came back INTERNAL "Internal error from Core" past the cap and 51 of 200 without the token
(grpc/grpc#36066); the server now reads the start first (server/toolwire/server/refusal.py)."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc

from tests.conftest import start_request
from tests.e2e.conftest import start_server, stop_server
from toolwire.v1 import chat_pb2_grpc

BATCHES = 5
CHATS_PER_BATCH = 40
TOKEN = "tw-e2e-refusal-token-0123456789"


async def refused_codes(stub: chat_pb2_grpc.ChatServiceStub, metadata=()) -> Counter[str]:
    """The status codes of BATCHES x CHATS_PER_BATCH chats that write their start, then read."""

    async def one() -> str:
        call = stub.Chat(timeout=30, metadata=metadata)
        try:
            await call.write(start_request("scripted/echo", tools=()))
            while await call.read() is not grpc.aio.EOF:
                pass
        except grpc.aio.AioRpcError as error:
            return error.code().name
        return "OK"

    codes: Counter[str] = Counter()
    for _ in range(BATCHES):
        codes.update(await asyncio.gather(*(one() for _ in range(CHATS_PER_BATCH))))
    return codes


async def test_every_chat_past_the_cap_gets_resource_exhausted():
    server = start_server("--max-concurrent-chats", "1")
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = chat_pb2_grpc.ChatServiceStub(channel)
            running = stub.Chat(timeout=60)
            await running.write(start_request("scripted/slow", tools=()))
            while not (await running.read()).HasField("text_delta"):
                pass
            codes = await refused_codes(stub)
            running.cancel()
        assert codes == Counter({"RESOURCE_EXHAUSTED": BATCHES * CHATS_PER_BATCH})
    finally:
        stop_server(server)


async def test_every_chat_without_the_token_gets_unauthenticated():
    server = start_server(environment={"TOOLWIRE_AUTH_TOKEN": TOKEN})
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = chat_pb2_grpc.ChatServiceStub(channel)
            codes = await refused_codes(stub, (("authorization", "Bearer not-the-token"),))
        assert codes == Counter({"UNAUTHENTICATED": BATCHES * CHATS_PER_BATCH})
    finally:
        stop_server(server)

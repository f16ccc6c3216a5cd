"""`ChatSession`: one open Chat stream, its events, and the tool results sent back on it.

The session reads the server's events only when its caller asks for the next one. Tools that have
a function run as their own tasks as soon as their `ToolRequest` arrives; their results are written
when they finish, one write at a time, and reported as `ToolResultSent` events. Tool requests for
tools without a function are left to the caller, who answers with `send_result`.

The request side stays open until `ChatFinish` arrives (the server fails a chat whose client
half-closes while a tool may still be called); then the session half-closes and drains the stream
to its status.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeAlias

import grpc

from toolwire.client._tool_runner import run_tool
from toolwire.client._tracing import tool_span
from toolwire.client.errors import ToolwireError
from toolwire.client.events import Event, Finish, ToolRequest, ToolResultSent, event_from_proto
from toolwire.client.schema import Tool
from toolwire.v1 import chat_pb2

log = logging.getLogger(__name__)

ChatCall: TypeAlias = grpc.aio.StreamStreamCall[chat_pb2.ChatRequest, chat_pb2.ChatResponse]
ChatMethod: TypeAlias = grpc.aio.StreamStreamMultiCallable[chat_pb2.ChatRequest, chat_pb2.ChatResponse]


class ChatSession:
    """One chat, open while inside `async with`; iterate it for events.

    Tools with a function are run and answered automatically. For every other `ToolRequest`,
    call `send_result` with the request's `tool_call_id`. Leaving the `async with` block before
    the `Finish` event cancels the chat and any tool still running.
    """

    def __init__(self, method: ChatMethod, start: chat_pb2.ChatStart, tools: Mapping[str, Tool]) -> None:
        self._method = method
        self._start = start
        self._functions: dict[str, Callable[..., Any]] = {
            name: tool.function for name, tool in tools.items() if tool.function is not None
        }
        self._call: ChatCall | None = None
        self._write_lock = asyncio.Lock()
        self._read_task: asyncio.Task[object] | None = None
        self._tool_tasks: dict[str, asyncio.Task[ToolResultSent | None]] = {}
        self._ready: deque[Event] = deque()
        self._awaiting_caller: set[str] = set()
        self._answered: set[str] = set()
        self._finished = False
        self._stopped = False
        self._closed = False

    async def __aenter__(self) -> ChatSession:
        if self._call is not None:
            raise RuntimeError("this ChatSession was already opened; open a new one for a new chat")
        # No request iterator: requests are written with call.write(), the first one being start.
        self._call = self._method(None)
        try:
            await self._write(self._call, chat_pb2.ChatRequest(start=self._start))
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> ChatSession:
        return self

    async def __anext__(self) -> Event:
        call = self._opened_call()
        while not self._ready:
            if self._stopped:
                raise StopAsyncIteration
            try:
                await self._step(call)
            except Exception:
                self._stopped = True
                self._ready.clear()
                raise
        return self._ready.popleft()

    def runs_automatically(self, tool_name: str) -> bool:
        """Whether the session runs and answers calls to this tool itself (the tool has a function)."""
        return tool_name in self._functions

    async def send_result(self, tool_call_id: str, content: str, *, is_error: bool = False) -> None:
        """Answers a `ToolRequest` for a tool without a function.

        Raises:
            ValueError: No unanswered `ToolRequest` with this id was received from this chat.
            ToolwireError: The chat already ended with an error status.
            RuntimeError: The chat already finished.
        """
        call = self._opened_call()
        if not isinstance(content, str):
            raise TypeError(
                f"content must be a str (JSON text for structured results), not {type(content).__name__}"
            )
        if tool_call_id in self._answered:
            raise ValueError(f"tool call {tool_call_id!r} was already answered; answer each call once")
        if tool_call_id not in self._awaiting_caller:
            raise ValueError(f"no ToolRequest with tool_call_id {tool_call_id!r} arrived on this chat")
        self._awaiting_caller.discard(tool_call_id)
        self._answered.add(tool_call_id)
        result = chat_pb2.ToolResult(tool_call_id=tool_call_id, content=content, is_error=is_error)
        async with self._write_lock:
            if self._finished:
                raise RuntimeError(f"the chat already finished; the result for {tool_call_id!r} was not sent")
            await self._write(call, chat_pb2.ChatRequest(tool_result=result))

    async def aclose(self) -> None:
        """Cancels the chat if it has not finished, and any tool task still running. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stopped = True
        if self._call is not None:
            self._call.cancel()  # A no-op once the call has ended.
        tasks: list[asyncio.Task[Any]] = list(self._tool_tasks.values())
        if self._read_task is not None:
            tasks.append(self._read_task)
        self._tool_tasks.clear()
        self._read_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _opened_call(self) -> ChatCall:
        if self._call is None:
            raise RuntimeError("open the session first: `async with client.chat_session(...) as session:`")
        return self._call

    async def _step(self, call: ChatCall) -> None:
        """Waits for the next server event or finished tool, and queues what it produced."""
        if self._read_task is None:
            self._read_task = asyncio.ensure_future(call.read())
        waiting: set[asyncio.Task[Any]] = {self._read_task, *self._tool_tasks.values()}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for tool_call_id, task in list(self._tool_tasks.items()):
            if task in done:
                del self._tool_tasks[tool_call_id]
                sent = task.result()
                if sent is not None:
                    self._ready.append(sent)
        if self._read_task in done:
            read_task, self._read_task = self._read_task, None
            await self._handle(call, _response_of(read_task))

    async def _handle(self, call: ChatCall, response: chat_pb2.ChatResponse) -> None:
        event = event_from_proto(response)
        if event is None:
            log.debug("ignoring a ChatResponse kind this client does not know: %s", response)
            return
        if isinstance(event, ToolRequest):
            self._dispatch(event)
        elif isinstance(event, Finish):
            await self._finish(call)
        self._ready.append(event)

    def _dispatch(self, request: ToolRequest) -> None:
        """Starts the tool's task, or leaves the request to the caller when the tool has no function."""
        function = self._functions.get(request.name)
        if function is None:
            self._awaiting_caller.add(request.tool_call_id)
            return
        self._answered.add(request.tool_call_id)
        self._tool_tasks[request.tool_call_id] = asyncio.create_task(
            self._answer(function, request), name=f"toolwire tool {request.name} ({request.tool_call_id})"
        )

    async def _answer(self, function: Callable[..., Any], request: ToolRequest) -> ToolResultSent | None:
        """Runs one tool and sends its result; None when the chat ended before it could be sent."""
        with tool_span(request.name, request.tool_call_id, request.trace_context) as span:
            content, is_error = await run_tool(function, request.name, request.arguments)
            if is_error:
                span.failed(content)
        result = chat_pb2.ToolResult(tool_call_id=request.tool_call_id, content=content, is_error=is_error)
        async with self._write_lock:
            if self._finished:
                return None
            try:
                await self._write(self._opened_call(), chat_pb2.ChatRequest(tool_result=result))
            except (ToolwireError, RuntimeError) as error:
                # The call has ended; reading reports how, so the error is not raised twice.
                log.debug("result for tool call %s not sent: %s", request.tool_call_id, error)
                return None
        return ToolResultSent(request.tool_call_id, request.name, content, is_error)

    async def _finish(self, call: ChatCall) -> None:
        """After ChatFinish: stops tool tasks (abandoned calls), half-closes, drains to the status."""
        async with self._write_lock:
            self._finished = True
        tasks = list(self._tool_tasks.values())
        self._tool_tasks.clear()
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        self._ready.extend(outcome for outcome in outcomes if isinstance(outcome, ToolResultSent))
        try:
            await call.done_writing()
            while isinstance(await call.read(), chat_pb2.ChatResponse):
                log.warning("ignoring an event the server sent after ChatFinish")
        except grpc.aio.AioRpcError as error:
            raise ToolwireError.from_rpc_error(error) from None
        self._stopped = True

    @staticmethod
    async def _write(call: ChatCall, request: chat_pb2.ChatRequest) -> None:
        """Writes one request; raises ToolwireError, or RuntimeError when the call ended with OK."""
        try:
            await call.write(request)
        except grpc.aio.AioRpcError as error:
            raise ToolwireError.from_rpc_error(error) from None
        except asyncio.InvalidStateError:
            code = await call.code()
            if code is grpc.StatusCode.OK:
                raise RuntimeError("the chat already ended; nothing more can be sent on it") from None
            raise ToolwireError(code, await call.details()) from None


def _response_of(read_task: asyncio.Task[object]) -> chat_pb2.ChatResponse:
    """The read's response; raises ToolwireError for a non-OK status or an end without ChatFinish."""
    try:
        response = read_task.result()
    except grpc.aio.AioRpcError as error:
        raise ToolwireError.from_rpc_error(error) from None
    if not isinstance(response, chat_pb2.ChatResponse):  # grpc.aio.EOF: the stream ended with OK.
        raise ToolwireError(
            grpc.StatusCode.INTERNAL, "the server ended the chat stream without a ChatFinish event"
        )
    return response

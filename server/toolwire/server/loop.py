"""The tool loop: model call, tool requests, results, next model call, until the model is done.

One `ChatLoop` runs one chat. Per model call it relays text as it arrives, feeds tool-call fragments
to the assembler, checks each completed call and sends it to the client at once (early dispatch),
then waits until every call of the round is answered or abandoned before calling the model again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from toolwire.server.assembler import AssembledCall, ToolCallAssembler
from toolwire.server.chat_events import (
    ChatEvent,
    ChatFinished,
    FinishReason,
    TextOut,
    ToolAbandonedOut,
    ToolArgumentsOut,
    ToolRejectedOut,
    ToolRequestOut,
    UsageOut,
)
from toolwire.server.conversation import ChatRequest, Message, ModelCall, Role, ToolCall, ToolResult
from toolwire.server.events import (
    Reasoning,
    StopReason,
    TextDelta,
    ToolCallEnd,
    ToolCallFragment,
    TurnEnd,
    Usage,
)
from toolwire.server.models.base import Model
from toolwire.server.pending import Abandoned, PendingCalls
from toolwire.server.telemetry import NO_TELEMETRY, ChatTelemetry, ChatTrace
from toolwire.server.tools import ToolBox

Send = Callable[[ChatEvent], Awaitable[None]]

_FINISH_REASONS = {
    StopReason.STOP: FinishReason.STOP,
    StopReason.LENGTH: FinishReason.LENGTH,
    StopReason.CONTENT_FILTER: FinishReason.CONTENT_FILTER,
    StopReason.TOOL_CALLS: FinishReason.OTHER,  # the model said tool_calls but made none
    StopReason.OTHER: FinishReason.OTHER,
}


@dataclass(slots=True)
class _CheckedCall:
    call: AssembledCall
    rejection: str | None  # the error result the server gave the model, if it refused the call


@dataclass(slots=True)
class _Turn:
    """What one model call produced."""

    text_parts: list[str] = field(default_factory=list)
    calls: list[_CheckedCall] = field(default_factory=list)
    reasoning: list[Reasoning] = field(default_factory=list)
    usage: Usage | None = None
    stop_reason: StopReason | None = None

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


class ChatLoop:
    """Runs one chat from its request to its `ChatFinished` event."""

    def __init__(
        self,
        request: ChatRequest,
        model: Model,
        pending: PendingCalls,
        send: Send,
        telemetry: ChatTelemetry = NO_TELEMETRY,
    ) -> None:
        self._request = request
        self._model = model
        self._pending = pending
        self._send = send
        self._telemetry = telemetry
        self._trace: ChatTrace
        self._toolbox = ToolBox(request.tools)
        self._taken_ids: set[str] = {
            call.tool_call_id for message in request.messages for call in message.tool_calls
        }
        self._tools_called: list[str] = []
        self._chunks_received = 0
        self._usages: list[Usage | None] = []

    async def run(self) -> ChatFinished:
        """Runs the chat; every event but the last is sent as it happens, the last is returned too."""
        with self._telemetry.chat(self._request, self._model.model_id) as chat_trace:
            self._trace = chat_trace
            self._pending.on_settled = chat_trace.tool_settled
            try:
                finished = await self._run()
            finally:
                chat_trace.close()
            chat_trace.finished(finished)
        await self._send(finished)
        return finished

    async def _run(self) -> ChatFinished:
        started = time.monotonic()
        history = list(self._request.messages)
        appended: list[Message] = []
        tool_rounds = 0
        model_round = 0
        while True:
            model_round += 1
            may_call_tools = tool_rounds < self._request.max_tool_rounds
            turn = await self._model_turn(model_round, history, may_call_tools)
            if not turn.calls:
                reason = _FINISH_REASONS[turn.stop_reason or StopReason.STOP]
                appended.append(Message(Role.ASSISTANT, turn.text))
                break
            if not may_call_tools:
                reason = FinishReason.MAX_TOOL_ROUNDS
                appended.append(Message(Role.ASSISTANT, turn.text))  # the calls were not run: leave them out
                break
            round_messages = await self._tool_round(model_round, turn)
            history.extend(round_messages)
            appended.extend(round_messages)
            tool_rounds += 1
        return ChatFinished(
            reason=reason,
            text=turn.text,
            tools_called=tuple(self._tools_called),
            chunks_received=self._chunks_received,
            rounds=model_round,
            usage=_total_usage(self._usages),
            duration_seconds=time.monotonic() - started,
            messages=tuple(appended),
            model=self._model.model_id,
        )

    async def _model_turn(self, model_round: int, history: list[Message], may_call_tools: bool) -> _Turn:
        """Streams one model call, relaying text and dispatching each tool call once it is complete."""
        turn = _Turn()
        assembler = ToolCallAssembler(self._taken_ids)
        call = ModelCall(tuple(history), self._request.tools, self._request.options, model_round)
        send = self._send
        async with contextlib.AsyncExitStack() as stack:
            observed = stack.enter_context(self._trace.model_call(model_round, history))
            events = await stack.enter_async_context(contextlib.aclosing(self._model.stream(call)))
            async for event in events:
                if isinstance(event, TextDelta):
                    observed.chunk()
                    self._chunks_received += 1
                    turn.text_parts.append(event.text)
                    await send(TextOut(event.text, model_round))
                elif isinstance(event, ToolCallFragment):
                    observed.chunk()
                    self._chunks_received += 1
                    progress = assembler.add(event)
                    for completed in progress.completed:
                        await self._settle(completed, model_round, turn, may_call_tools)
                    if progress.delta is not None and self._request.stream_tool_arguments:
                        delta = progress.delta
                        await send(
                            ToolArgumentsOut(
                                delta.tool_call_id, delta.name, delta.arguments_delta, model_round
                            )
                        )
                elif isinstance(event, ToolCallEnd):
                    ended = assembler.end(event)
                    if ended is not None:
                        await self._settle(ended, model_round, turn, may_call_tools)
                elif isinstance(event, Reasoning):
                    turn.reasoning.append(event)
                elif isinstance(event, Usage):
                    turn.usage = event
                elif isinstance(event, TurnEnd):
                    turn.stop_reason = event.reason
                    for completed in assembler.flush():  # dispatch now, not when the stream closes
                        await self._settle(completed, model_round, turn, may_call_tools)
            for completed in assembler.flush():
                await self._settle(completed, model_round, turn, may_call_tools)
            observed.ended(turn.stop_reason, turn.usage, turn.text)
        self._usages.append(turn.usage)
        if turn.usage is not None:
            await send(UsageOut(model_round, turn.usage))
        return turn

    async def _settle(self, call: AssembledCall, model_round: int, turn: _Turn, may_call_tools: bool) -> None:
        """Checks a complete call; sends it to the client, or answers the model with an error."""
        if not may_call_tools:
            turn.calls.append(_CheckedCall(call, None))
            return
        verdict = self._toolbox.check(call)
        if verdict.error is not None and turn.stop_reason is StopReason.LENGTH:
            # the output limit cut this call short: nothing to run and nothing to tell the model
            reason = f"the model's output limit cut this call short ({verdict.error})"
            await self._send(
                ToolRejectedOut(call.tool_call_id, call.name, call.arguments_json, reason, model_round)
            )
            return
        turn.calls.append(_CheckedCall(call, verdict.error))
        if verdict.error is not None:
            await self._send(
                ToolRejectedOut(call.tool_call_id, call.name, call.arguments_json, verdict.error, model_round)
            )
            return
        self._pending.issue(call.tool_call_id, call.name)
        self._tools_called.append(call.name)
        trace_context = self._trace.tool_dispatched(call.tool_call_id, call.name)
        await self._send(
            ToolRequestOut(call.tool_call_id, call.name, verdict.arguments_json, model_round, trace_context)
        )

    async def _tool_round(self, model_round: int, turn: _Turn) -> list[Message]:
        """Waits for every dispatched call of the turn; returns the assistant turn and its tool results."""
        dispatched = [checked.call.tool_call_id for checked in turn.calls if checked.rejection is None]
        outcomes = dict(zip(dispatched, await self._pending.collect(dispatched), strict=True))
        assistant = Message(
            Role.ASSISTANT,
            turn.text,
            tool_calls=tuple(
                ToolCall(checked.call.tool_call_id, checked.call.name, checked.call.arguments_json)
                for checked in turn.calls
            ),
            reasoning=tuple(turn.reasoning),
        )
        results = [assistant]
        for checked in turn.calls:
            tool_call_id = checked.call.tool_call_id
            if checked.rejection is not None:
                results.append(
                    Message(Role.TOOL, checked.rejection, tool_call_id=tool_call_id, is_error=True)
                )
                continue
            outcome = outcomes[tool_call_id]
            if isinstance(outcome, Abandoned):
                await self._send(ToolAbandonedOut(tool_call_id, outcome.reason, model_round))
                outcome = ToolResult(tool_call_id, f"Error: {outcome.reason}.", is_error=True)
            results.append(
                Message(Role.TOOL, outcome.content, tool_call_id=tool_call_id, is_error=outcome.is_error)
            )
        return results


def _total_usage(usages: list[Usage | None]) -> Usage:
    """Sums usage over model calls; a count is unknown (None) if any call did not report it."""
    inputs = [usage.input_tokens if usage else None for usage in usages]
    outputs = [usage.output_tokens if usage else None for usage in usages]
    return Usage(
        input_tokens=None if None in inputs else sum(n for n in inputs if n is not None),
        output_tokens=None if None in outputs else sum(n for n in outputs if n is not None),
    )

"""OpenTelemetry traces and metrics of chats, model calls and tool rounds (GenAI semantic conventions).

`ChatTelemetry` holds the tracer and the instruments; `ChatTelemetry.chat()` gives one chat a
`ChatTrace`, which the loop tells what happens: a model call starts, a chunk arrives, a tool call is
sent and answered. Spans (children of the gRPC server span):

    invoke_agent toolwire                 one chat: rounds, tools called, chunks, outcome
      chat {model}                        one model call: usage, finish reason, time to first chunk
      execute_tool {tool}                 one tool call, from the ToolRequest to its result; its
                                          W3C context goes out in ToolRequest.trace_context

Prompt and completion text are recorded only when the operator opts in with
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true. Nothing here exports anything: see
`telemetry_setup` for the providers built from the OTEL_* environment variables.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from toolwire.server.chat_events import ChatFinished
from toolwire.server.conversation import ChatRequest, Message, ToolResult
from toolwire.server.events import StopReason, Usage
from toolwire.server.status import status_for

INSTRUMENTATION_NAME = "toolwire.server"
AGENT_NAME = "toolwire"
CAPTURE_CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# Semantic convention names (GenAI conventions, development status), spelled out once here.
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
AGENT = "gen_ai.agent.name"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"

_SECONDS_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_CHUNK_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)


class ChatTelemetry:
    """The tracer and instruments of one server (no-op unless real providers are passed or set)."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        capture_content: bool = False,
    ) -> None:
        self.tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION_NAME, meter_provider=meter_provider)
        self.capture_content = capture_content
        self.enabled = not (
            isinstance(tracer_provider, trace.NoOpTracerProvider)
            and isinstance(meter_provider, metrics.NoOpMeterProvider)
        )
        """False for `NO_TELEMETRY` (the server's default: no OTEL_* exporter configured). Then a chat
        gets a trace that does nothing at all, instead of no-op spans and instruments, which still
        cost ~45 µs of CPU per tool chat here, ~20 of them between a tool result and the next model
        call (context attach and detach, attribute dicts, the W3C carrier)."""
        self.measures_chunks = not isinstance(meter_provider, metrics.NoOpMeterProvider)
        """Whether chunk timings are worth taking (False when metrics go nowhere)."""
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            "s",
            "Duration of one model call.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            "{token}",
            "Input and output tokens of one model call.",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            "s",
            "Time from the model request to its first chunk.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self.time_per_output_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_per_output_chunk",
            "s",
            "Time between consecutive chunks of one model call (the output rate).",
            explicit_bucket_boundaries_advisory=_CHUNK_BUCKETS,
        )
        self.agent_duration = meter.create_histogram(
            "gen_ai.invoke_agent.duration",
            "s",
            "Duration of one chat.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self.inference_calls = meter.create_histogram(
            "gen_ai.invoke_agent.inference_calls", "{call}", "Model calls of one chat."
        )
        self.agent_tool_calls = meter.create_histogram(
            "gen_ai.invoke_agent.tool_calls", "{call}", "Tool calls sent to the client in one chat."
        )
        self.tool_duration = meter.create_histogram(
            "gen_ai.execute_tool.duration",
            "s",
            "Time from a ToolRequest to its result.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self.active_chats = meter.create_up_down_counter(
            "toolwire.chats.active", "{chat}", "Chats running now."
        )
        self.chats = meter.create_counter(
            "toolwire.chats", "{chat}", "Chats ended, by gRPC status code (0 is OK) and finish reason."
        )

    @contextmanager
    def chat(self, request: ChatRequest, model_id: str) -> Iterator[ChatTrace]:
        """Traces one chat; an exception leaving the block is the chat's failure."""
        if not self.enabled:
            yield _NullChatTrace(self)
            return
        provider = model_id.partition("/")[0]
        attributes = {
            OPERATION: "invoke_agent",
            AGENT: AGENT_NAME,
            PROVIDER: provider,
            REQUEST_MODEL: model_id,
        }
        started = time.monotonic()
        self.active_chats.add(1)
        outcome: dict[str, str | int] = {"rpc.grpc.status_code": 0}
        with self.tracer.start_as_current_span(f"invoke_agent {AGENT_NAME}", kind=SpanKind.INTERNAL,
                                               attributes=attributes, record_exception=False,
                                               set_status_on_exception=False) as span:  # fmt: skip
            chat_trace = ChatTrace(self, span, provider, model_id)
            try:
                yield chat_trace
            except BaseException as error:
                code, message = status_for(error) if isinstance(error, Exception) else (None, "cancelled")
                outcome = {
                    "rpc.grpc.status_code": code.value[0] if code else 1,
                    ERROR_TYPE: _error_type(error),
                }
                span.set_status(Status(StatusCode.ERROR, message))
                span.set_attribute(ERROR_TYPE, _error_type(error))
                raise
            finally:
                self.active_chats.add(-1)
                elapsed = time.monotonic() - started
                self.agent_duration.record(elapsed, {**attributes, **outcome})
                self.inference_calls.record(chat_trace.model_calls, {PROVIDER: provider})
                self.agent_tool_calls.record(chat_trace.tool_calls, {PROVIDER: provider})
                self.chats.add(1, {PROVIDER: provider, **outcome, **chat_trace.finish_attributes})


NO_TELEMETRY = ChatTelemetry(trace.NoOpTracerProvider(), metrics.NoOpMeterProvider())
"""Records nothing: for a loop run without a server (tests, embedding)."""


class ChatTrace:
    """What the loop reports about one chat."""

    def __init__(self, telemetry: ChatTelemetry, span: Span, provider: str, model_id: str) -> None:
        self._telemetry = telemetry
        self._span = span
        self._provider = provider
        self._model_id = model_id
        self._tools: dict[str, _ToolSpan] = {}
        self.model_calls = 0
        self.tool_calls = 0
        self.finish_attributes: dict[str, str] = {}

    def model_call(
        self, model_round: int, messages: Sequence[Message]
    ) -> AbstractContextManager[ModelCallTrace]:
        """Traces one model call; an exception leaving the block is its failure."""
        return self._model_call(model_round, messages)

    @contextmanager
    def _model_call(self, model_round: int, messages: Sequence[Message]) -> Iterator[ModelCallTrace]:
        self.model_calls += 1
        telemetry = self._telemetry
        model_name = self._model_id.partition("/")[2] or self._model_id
        attributes = {OPERATION: "chat", PROVIDER: self._provider, REQUEST_MODEL: model_name}
        with telemetry.tracer.start_as_current_span(
            f"chat {model_name}",
            kind=SpanKind.CLIENT,
            attributes={**attributes, "toolwire.round": model_round},
        ) as span:
            if telemetry.capture_content:
                span.set_attribute("gen_ai.input.messages", _messages_json(messages))
            call = ModelCallTrace(telemetry, span, attributes)
            try:
                yield call
            except Exception as error:
                call.error_type = _error_type(error)
                span.set_attribute(ERROR_TYPE, call.error_type)
                raise
            finally:
                call.record()

    def tool_dispatched(self, tool_call_id: str, name: str) -> dict[str, str]:
        """Opens the span of a tool call sent to the client; returns its W3C context to send along."""
        self.tool_calls += 1
        attributes = {
            OPERATION: "execute_tool",
            TOOL_NAME: name,
            TOOL_CALL_ID: tool_call_id,
            TOOL_TYPE: "function",
        }
        span = self._telemetry.tracer.start_span(
            f"execute_tool {name}", trace.set_span_in_context(self._span), SpanKind.INTERNAL, attributes
        )  # a child of the chat, beside the model calls
        self._tools[tool_call_id] = _ToolSpan(span, name, time.monotonic())
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span, otel_context.Context()))
        return carrier

    def tool_settled(
        self, tool_call_id: str, result: ToolResult | None, abandon_reason: str | None = None
    ) -> None:
        """Ends a tool call's span: answered (`result`), or abandoned or failed (`abandon_reason`)."""
        tool = self._tools.pop(tool_call_id, None)
        if tool is None:
            return
        error_type = "timeout" if result is None else ("tool_error" if result.is_error else None)
        if error_type is not None:
            tool.span.set_attribute(ERROR_TYPE, error_type)
            tool.span.set_status(Status(StatusCode.ERROR, abandon_reason or "the tool reported an error"))
        tool.span.end()
        attributes = {TOOL_NAME: tool.name, **({ERROR_TYPE: error_type} if error_type else {})}
        self._telemetry.tool_duration.record(time.monotonic() - tool.started, attributes)

    def finished(self, finished: ChatFinished) -> None:
        """Records the chat's summary on its span."""
        self.finish_attributes = {"toolwire.finish_reason": finished.reason.value}
        self._span.set_attributes(
            {
                "toolwire.chat.rounds": finished.rounds,
                "toolwire.chat.tools_called": list(finished.tools_called),
                "toolwire.chat.chunks": finished.chunks_received,
                "toolwire.finish_reason": finished.reason.value,
                **_usage_attributes(finished.usage),
            }
        )
        if self._telemetry.capture_content:
            self._span.set_attribute("gen_ai.output.messages", _messages_json(finished.messages))

    def close(self) -> None:
        """Ends the spans of tool calls never answered (the chat ended first)."""
        for tool_call_id in list(self._tools):
            self.tool_settled(tool_call_id, None, "the chat ended before the tool call was answered")


class _NullChatTrace(ChatTrace):
    """The trace of a chat when telemetry is off: every report is dropped where it is made."""

    def __init__(self, telemetry: ChatTelemetry) -> None:
        super().__init__(telemetry, trace.INVALID_SPAN, "", "")

    def model_call(
        self, model_round: int, messages: Sequence[Message]
    ) -> AbstractContextManager[ModelCallTrace]:
        return nullcontext(_NULL_MODEL_CALL)

    def tool_dispatched(self, tool_call_id: str, name: str) -> dict[str, str]:
        return {}

    def tool_settled(
        self, tool_call_id: str, result: ToolResult | None, abandon_reason: str | None = None
    ) -> None:
        pass

    def finished(self, finished: ChatFinished) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(slots=True)
class _ToolSpan:
    span: Span
    name: str
    started: float


class ModelCallTrace:
    """What the loop reports about one model call."""

    def __init__(self, telemetry: ChatTelemetry, span: Span, attributes: Mapping[str, str]) -> None:
        self._telemetry = telemetry
        self._span = span
        self._attributes = attributes
        self._started = time.monotonic()
        self._measures_chunks = telemetry.measures_chunks
        self._last_chunk: float | None = None
        self.error_type: str | None = None
        self.usage: Usage | None = None

    def chunk(self) -> None:
        """A content chunk (text or a tool-call fragment) arrived: on the relay's hot path, so it
        does nothing unless metrics are exported, and keeps nothing per chunk."""
        if not self._measures_chunks:
            return
        now = time.monotonic()
        if self._last_chunk is None:
            self._telemetry.time_to_first_chunk.record(now - self._started, self._attributes)
        else:
            self._telemetry.time_per_output_chunk.record(now - self._last_chunk, self._attributes)
        self._last_chunk = now

    def ended(self, stop_reason: StopReason | None, usage: Usage | None, text: str) -> None:
        """The model call ended normally with this stop reason and usage."""
        self.usage = usage
        self._span.set_attribute(FINISH_REASONS, [stop_reason.value if stop_reason else "unknown"])
        self._span.set_attributes(_usage_attributes(usage))
        if self._telemetry.capture_content:
            self._span.set_attribute(
                "gen_ai.output.messages", json.dumps([{"role": "assistant", "content": text}])
            )

    def record(self) -> None:
        """Records the call's metrics (once, when its span ends)."""
        telemetry = self._telemetry
        attributes = dict(self._attributes)
        if self.error_type is not None:
            attributes[ERROR_TYPE] = self.error_type
        telemetry.operation_duration.record(time.monotonic() - self._started, attributes)
        if self.usage is not None:
            for token_type, count in (
                ("input", self.usage.input_tokens),
                ("output", self.usage.output_tokens),
            ):
                if count is not None:
                    telemetry.token_usage.record(count, {**self._attributes, "gen_ai.token.type": token_type})


class _NullModelCallTrace(ModelCallTrace):
    """The trace of a model call when telemetry is off (shared: it keeps nothing)."""

    def chunk(self) -> None:
        pass

    def ended(self, stop_reason: StopReason | None, usage: Usage | None, text: str) -> None:
        pass

    def record(self) -> None:
        pass


_NULL_MODEL_CALL = _NullModelCallTrace(NO_TELEMETRY, trace.INVALID_SPAN, {})


def _usage_attributes(usage: Usage | None) -> dict[str, int]:
    """Usage as span attributes; an unknown count is left out, never reported as 0."""
    if usage is None:
        return {}
    counts = {INPUT_TOKENS: usage.input_tokens, OUTPUT_TOKENS: usage.output_tokens}
    return {key: value for key, value in counts.items() if value is not None}


def _messages_json(messages: Sequence[Message]) -> str:
    return json.dumps([{"role": message.role.value, "content": message.content} for message in messages])


def _error_type(error: BaseException) -> str:
    return type(error).__name__

// Unit tests of the pure conversion code: options → ChatStart, proto events → ChatEvent,
// tool results and errors → text, status codes → names. No server.
import assert from "node:assert/strict";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";

import { Code, codeNameOf, ToolwireError } from "../src/errors.js";
import { eventFromProto, finishFromProto, messageFromProto, messageToProto } from "../src/events.js";
import {
  ChatFinishSchema,
  ChatResponseSchema,
  FinishReason,
  MessageSchema,
  Role,
  ToolChoiceMode,
} from "../src/gen/toolwire/v1/chat_pb.js";
import { startFromOptions } from "../src/options.js";
import { errorContent, resultContent, runTool } from "../src/tools.js";

const context = { signal: new AbortController().signal, toolCallId: "call_1", traceContext: {} };

test("start_from_a_prompt_with_every_option", () => {
  const start = startFromOptions({
    model: "scripted/weather",
    prompt: "Hi",
    tools: { get_weather: { description: "Weather.", parameters: { type: "object" }, run: () => "x" }, ping: {} },
    maxToolRounds: 3,
    toolTimeoutMs: 1500,
    temperature: 0,
    topP: 0.5,
    maxOutputTokens: 100,
    stop: ["END"],
    toolChoice: { tool: "get_weather" },
    parallelToolCalls: false,
    streamToolArguments: true,
    textCoalesceWindowMs: 30,
  });
  assert.equal(start.model, "scripted/weather");
  assert.deepEqual(start.messages.map((m) => [m.role, m.content]), [[Role.USER, "Hi"]]);
  assert.deepEqual(start.tools.map((t) => [t.name, t.description, t.parametersJsonSchema]), [
    ["get_weather", "Weather.", '{"type":"object"}'],
    ["ping", "", ""],
  ]);
  assert.equal(start.maxToolRounds, 3);
  assert.equal(start.toolTimeout?.seconds, 1n);
  assert.equal(start.toolTimeout?.nanos, 500_000_000);
  assert.equal(start.temperature, 0); // set to 0, not left unset
  assert.equal(start.topP, 0.5);
  assert.equal(start.maxOutputTokens, 100);
  assert.deepEqual(start.stop, ["END"]);
  assert.deepEqual([start.toolChoice?.mode, start.toolChoice?.toolName], [ToolChoiceMode.TOOL, "get_weather"]);
  assert.equal(start.parallelToolCalls, false);
  assert.equal(start.streamToolArguments, true);
  assert.deepEqual([start.textCoalesceWindow?.seconds, start.textCoalesceWindow?.nanos], [0n, 30_000_000]);
});

test("start_leaves_unset_options_unset", () => {
  const start = startFromOptions({ model: "scripted/echo", messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }] });
  assert.deepEqual(start.messages.map((m) => m.role), [Role.SYSTEM, Role.USER]);
  assert.equal(start.temperature, undefined);
  assert.equal(start.topP, undefined);
  assert.equal(start.parallelToolCalls, undefined);
  assert.equal(start.toolTimeout, undefined);
  assert.equal(start.textCoalesceWindow, undefined);
  assert.equal(start.toolChoice, undefined);
  assert.deepEqual([start.maxToolRounds, start.maxOutputTokens, start.tools.length], [0, 0, 0]);
});

test("tool_choice_modes", () => {
  for (const [choice, mode] of [["auto", ToolChoiceMode.AUTO], ["none", ToolChoiceMode.NONE], ["required", ToolChoiceMode.REQUIRED]] as const) {
    assert.equal(startFromOptions({ model: "m", prompt: "p", toolChoice: choice }).toolChoice?.mode, mode);
  }
});

test("start_needs_exactly_one_of_prompt_and_messages", () => {
  assert.throws(() => startFromOptions({ model: "m" }), TypeError);
  assert.throws(() => startFromOptions({ model: "m", prompt: "p", messages: [] }), TypeError);
});

test("messages_round_trip_and_unknown_roles_are_refused", () => {
  const message = { role: "assistant" as const, content: "", toolCalls: [{ id: "c1", name: "t", argumentsJson: "{}" }], toolCallId: "", isError: false };
  assert.deepEqual(messageFromProto(messageToProto(message)), message);
  assert.deepEqual(messageFromProto(messageToProto({ role: "tool", content: "boom", toolCallId: "c1", isError: true })), {
    role: "tool", content: "boom", toolCalls: [], toolCallId: "c1", isError: true,
  });
  assert.throws(() => messageToProto({ role: "robot" as never }), /not one of system, user, assistant, tool/);
  assert.throws(() => messageFromProto(create(MessageSchema, { role: Role.UNSPECIFIED })), /not a known toolwire role/);
});

test("events_from_proto", () => {
  const event = (value: Parameters<typeof create<typeof ChatResponseSchema>>[1]) => eventFromProto(create(ChatResponseSchema, value));
  assert.deepEqual(event({ event: { case: "started", value: { chatId: "abc", model: "scripted/echo" } } }), { type: "started", chatId: "abc", model: "scripted/echo" });
  assert.deepEqual(event({ event: { case: "textDelta", value: { text: "Hi", round: 1 } } }), { type: "text", text: "Hi", round: 1 });
  const traceContext = { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" };
  assert.deepEqual(event({ event: { case: "toolRequest", value: { toolCallId: "c", name: "t", argumentsJson: '{"a": 1}', round: 2, traceContext } } }), {
    type: "toolRequest", toolCallId: "c", name: "t", arguments: { a: 1 }, argumentsJson: '{"a": 1}', round: 2, traceContext,
  });
  assert.deepEqual(event({ event: { case: "toolRequest", value: { toolCallId: "c", name: "t", argumentsJson: "" } } }), {
    type: "toolRequest", toolCallId: "c", name: "t", arguments: {}, argumentsJson: "", round: 0, traceContext: {},
  });
  assert.deepEqual(event({ event: { case: "toolArgumentsDelta", value: { toolCallId: "c", name: "t", argumentsDelta: '{"a', round: 1 } } }), {
    type: "toolArgumentsDelta", toolCallId: "c", name: "t", argumentsDelta: '{"a', round: 1,
  });
  assert.deepEqual(event({ event: { case: "toolCallAbandoned", value: { toolCallId: "c", reason: "late", round: 1 } } }), {
    type: "toolCallAbandoned", toolCallId: "c", reason: "late", round: 1,
  });
  assert.deepEqual(event({ event: { case: "toolCallRejected", value: { toolCallId: "c", name: "x", argumentsJson: "{}", reason: "Unknown tool", round: 1 } } }), {
    type: "toolCallRejected", toolCallId: "c", name: "x", argumentsJson: "{}", reason: "Unknown tool", round: 1,
  });
  assert.deepEqual(event({ event: { case: "usage", value: { round: 1, usage: { inputTokens: 0n } } } }), {
    type: "usage", round: 1, inputTokens: 0, outputTokens: undefined, // 0 stays 0; unset stays unknown
  });
  assert.equal(event({}), undefined);
});

test("tool_arguments_that_are_not_an_object_are_an_internal_error", () => {
  for (const argumentsJson of ["[1]", "not json", "null"]) {
    const response = create(ChatResponseSchema, { event: { case: "toolRequest", value: { toolCallId: "c", name: "t", argumentsJson } } });
    assert.throws(() => eventFromProto(response), (error) => error instanceof ToolwireError && error.code === Code.Internal);
  }
});

test("finish_from_proto", () => {
  const finish = finishFromProto(
    create(ChatFinishSchema, {
      reason: FinishReason.MAX_TOOL_ROUNDS,
      text: "done",
      toolsCalled: ["a", "b"],
      chunksReceived: 7n,
      rounds: 3,
      usage: { inputTokens: 52n, outputTokens: 16n },
      duration: { seconds: 1n, nanos: 250_000_000 },
      messages: [{ role: Role.ASSISTANT, content: "done" }],
      model: "scripted/loop",
    }),
  );
  assert.deepEqual(finish, {
    type: "finish", reason: "max_tool_rounds", text: "done", toolsCalled: ["a", "b"], chunksReceived: 7, rounds: 3,
    inputTokens: 52, outputTokens: 16, durationMs: 1250,
    messages: [{ role: "assistant", content: "done", toolCalls: [], toolCallId: "", isError: false }], model: "scripted/loop",
  });
  const bare = finishFromProto(create(ChatFinishSchema, {}));
  assert.deepEqual([bare.reason, bare.inputTokens, bare.outputTokens, bare.durationMs], ["other", undefined, undefined, 0]);
});

test("tool_results_as_text", async () => {
  assert.equal(resultContent("plain"), "plain");
  assert.equal(resultContent({ sky: "sunny", celsius: 21 }), '{"sky":"sunny","celsius":21}');
  assert.equal(resultContent([1, 2]), "[1,2]");
  assert.equal(resultContent(undefined), "null");
  assert.equal(errorContent(new RangeError("too far")), "RangeError: too far");
  assert.equal(errorContent("a string"), "Error: a string");
  assert.deepEqual(await runTool("t", async ({ n }) => (n as number) * 2, { n: 21 }, context), { content: "42", isError: false });
  assert.deepEqual(await runTool("t", () => Promise.reject(new TypeError("bad")), {}, context), { content: "TypeError: bad", isError: true });
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const outcome = await runTool("t", () => circular, {}, context);
  assert.equal(outcome.isError, true);
  assert.match(outcome.content, /^TypeError: /);
});

test("status_code_names_and_errors", () => {
  assert.equal(codeNameOf(Code.Unavailable), "UNAVAILABLE");
  assert.equal(codeNameOf(Code.DeadlineExceeded), "DEADLINE_EXCEEDED");
  assert.equal(codeNameOf(Code.Canceled), "CANCELLED");
  assert.equal(codeNameOf(99 as Code), "CODE_99");
  const error = ToolwireError.from(new ConnectError("no such model", Code.NotFound));
  assert.deepEqual([error.code, error.codeName, error.details, error.message, error.name], [5, "NOT_FOUND", "no such model", "NOT_FOUND: no such model", "ToolwireError"]);
  assert.equal(ToolwireError.from(error), error);
  assert.equal(ToolwireError.from(new Error("odd")).codeName, "UNKNOWN");
});

// The scenario list of tests/e2e/test_python_client.py, run against a real `toolwire serve`
// process, with the same test names so the Python, Go and TypeScript suites line up.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";

import { createGrpcTransport } from "@connectrpc/connect-node";

import { type ChatEvent, type ChatOptions, Client, Code, type FinishEvent, type Tools, ToolwireError } from "../src/index.js";
import { startServer, type TestServer } from "../src/testing.js";

const getWeather = {
  description: "Current weather for a place.",
  parameters: { type: "object", properties: { location: { type: "string", description: "A city name." } }, required: ["location"] },
  run: ({ location }: { location: string }) => ({ location, sky: "sunny" }),
};
const getTime = {
  description: "Local time in a city.",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  run: ({ city }: { city: string }) => `12:00 in ${city}`,
};
const TOOLS: Tools = { get_weather: getWeather, get_time: getTime };

let server: TestServer;
let client: Client;

before(async () => {
  server = await startServer();
  client = new Client(server.target);
});

after(async () => {
  client.close();
  await server.stop();
});

async function collect(options: Partial<ChatOptions> & { model: string }): Promise<ChatEvent[]> {
  const events: ChatEvent[] = [];
  for await (const event of client.chat({ prompt: "What is the weather in Paris?", tools: TOOLS, ...options })) {
    events.push(event);
  }
  return events;
}

/** The events of one type, typed. */
function only<T extends ChatEvent["type"]>(events: ChatEvent[], type: T): Extract<ChatEvent, { type: T }>[] {
  return events.filter((event): event is Extract<ChatEvent, { type: T }> => event.type === type);
}

function lastFinish(events: ChatEvent[]): FinishEvent {
  const finish = events.at(-1);
  assert.equal(finish?.type, "finish");
  return finish as FinishEvent;
}

test("text_only", async () => {
  const events = await collect({ model: "scripted/echo", tools: {} });
  assert.deepEqual(events[0], { type: "started", chatId: (events[0] as { chatId: string }).chatId, model: "scripted/echo" });
  assert.equal(only(events, "text").map((e) => e.text).join(""), "What is the weather in Paris?");
  const finish = lastFinish(events);
  assert.deepEqual([finish.reason, finish.rounds, finish.toolsCalled], ["stop", 1, []]);
  assert.equal(finish.inputTokens, undefined); // the echo model reports no usage
  assert.equal(finish.outputTokens, undefined);
});

test("one_tool_round", async () => {
  const events = await collect({ model: "scripted/weather" });
  const requests = only(events, "toolRequest");
  assert.deepEqual(requests.map((r) => [r.name, r.arguments]), [["get_weather", { location: "Paris" }]]);
  const sent = only(events, "toolResultSent");
  assert.deepEqual(JSON.parse(sent[0]!.content), { location: "Paris", sky: "sunny" });
  assert.equal(sent[0]!.isError, false);
  const finish = lastFinish(events);
  assert.deepEqual([finish.text, finish.rounds, finish.toolsCalled], ["It is sunny in Paris.", 2, ["get_weather"]]);
  assert.deepEqual([finish.inputTokens, finish.outputTokens], [52, 16]);
  assert.deepEqual(finish.messages.map((m) => m.role), ["assistant", "tool", "assistant"]);
  assert.equal(finish.messages[0]!.toolCalls[0]!.id, requests[0]!.toolCallId);
  assert.deepEqual(only(events, "usage").map((u) => u.round), [1, 2]);
});

test("two_parallel_calls_answered_out_of_order", async () => {
  const slowWeather = {
    ...getWeather,
    run: async () => {
      await sleep(300);
      return "sunny";
    },
  };
  const events = await collect({ model: "scripted/parallel", tools: { get_weather: slowWeather, get_time: getTime } });
  assert.deepEqual(only(events, "toolRequest").map((e) => e.name), ["get_weather", "get_time"]);
  assert.deepEqual(only(events, "toolResultSent").map((e) => e.name), ["get_time", "get_weather"]);
  const tools = lastFinish(events).messages.filter((m) => m.role === "tool");
  assert.deepEqual(Object.fromEntries(tools.map((m) => [m.toolCallId, m.content])), { call_w: "sunny", call_t: "12:00 in Tokyo" });
});

test("a_tool_that_throws", async () => {
  class ConnectionError extends Error {
    override name = "ConnectionError";
  }
  const failing = {
    ...getWeather,
    run: () => {
      throw new ConnectionError("weather service down");
    },
  };
  const events = await collect({ model: "scripted/weather", tools: { get_weather: failing } });
  const sent = only(events, "toolResultSent")[0]!;
  assert.equal(sent.isError, true);
  assert.equal(sent.content, "ConnectionError: weather service down");
  const finish = lastFinish(events);
  const toolMessage = finish.messages[1]!;
  assert.equal(toolMessage.isError, true);
  assert.match(toolMessage.content, /ConnectionError/);
  assert.equal(finish.reason, "stop");
});

test("an_unknown_tool_is_handled_by_the_server", async () => {
  const events = await collect({ model: "scripted/unknown_tool" });
  assert.deepEqual(only(events, "toolRequest"), []);
  const rejected = only(events, "toolCallRejected");
  assert.deepEqual(rejected.map((r) => r.name), ["launch_rocket"]);
  assert.match(rejected[0]!.reason, /Unknown tool/);
  assert.equal(lastFinish(events).text, "I cannot do that.");
});

test("a_chat_cancelled_mid_stream_leaves_the_server_healthy", async () => {
  const controller = new AbortController();
  const reason = new Error("the user went away");
  const seen: string[] = [];
  await assert.rejects(
    (async () => {
      for await (const event of client.chat({ model: "scripted/slow", prompt: "hi", signal: controller.signal })) {
        seen.push(event.type);
        if (event.type === "text") {
          controller.abort(reason); // cancel while the model is still streaming
        }
      }
    })(),
    (error) => error === reason,
  );
  assert.deepEqual(seen, ["started", "text"]);
  assert.ok((await client.listModels()).length > 0);
  const finish = await client.run({ model: "scripted/weather", prompt: "again", tools: { get_weather: getWeather } });
  assert.equal(finish.reason, "stop");
});

test("max_tool_rounds", async () => {
  const finish = await client.run({ model: "scripted/loop", prompt: "go", tools: { get_time: getTime }, maxToolRounds: 2 });
  assert.deepEqual([finish.reason, finish.rounds, finish.toolsCalled], ["max_tool_rounds", 3, ["get_time", "get_time"]]);
});

test("a_server_error_surfaces_as_a_typed_error", async () => {
  await assert.rejects(client.run({ model: "scripted/unavailable", prompt: "hi" }), (error) => {
    assert.ok(error instanceof ToolwireError);
    assert.deepEqual([error.code, error.codeName], [14, "UNAVAILABLE"]);
    assert.equal(error.code, Code.Unavailable);
    assert.match(error.details, /the model is overloaded/);
    assert.equal(error.message, `UNAVAILABLE: ${error.details}`);
    return true;
  });
  await assert.rejects(client.run({ model: "scripted/no_such_script", prompt: "hi" }), (error) => {
    assert.ok(error instanceof ToolwireError);
    assert.deepEqual([error.code, error.codeName], [Code.NotFound, "NOT_FOUND"]);
    return true;
  });
});

test("manual_mode_answers_tool_requests_by_hand", async () => {
  const session = client.chatSession({
    model: "scripted/weather",
    prompt: "Weather?",
    tools: { get_weather: { description: "weather", parameters: getWeather.parameters } },
  });
  const seen: ChatEvent[] = [];
  for await (const event of session) {
    seen.push(event);
    if (event.type === "toolRequest") {
      session.sendResult(event.toolCallId, "cloudy, by hand");
      assert.throws(() => session.sendResult(event.toolCallId, "twice"), /already answered/);
    }
  }
  assert.equal(lastFinish(seen).messages[1]!.content, "cloudy, by hand");
  assert.deepEqual(only(seen, "toolResultSent"), []); // only tools with run report their results
});

test("a_tool_without_run_in_chat_rejects", async () => {
  const manualOnly: Tools = { get_weather: { description: "weather", parameters: getWeather.parameters } };
  await assert.rejects(client.run({ model: "scripted/weather", prompt: "Weather?", tools: manualOnly }), /chatSession\(\)/);
});

test("a_tool_slower_than_the_timeout_is_abandoned", async () => {
  let toolSignal: AbortSignal | undefined;
  const slow = {
    ...getWeather,
    run: async (_: unknown, { signal }: { signal: AbortSignal }) => {
      toolSignal = signal;
      await sleep(2000, undefined, { signal }).catch(() => undefined);
      return "late";
    },
  };
  const events = await collect({ model: "scripted/weather", tools: { get_weather: slow }, toolTimeoutMs: 300 });
  assert.deepEqual(only(events, "toolCallAbandoned").map((a) => a.toolCallId), ["call_1"]);
  const finish = lastFinish(events);
  assert.equal(finish.messages[1]!.isError, true);
  assert.equal(finish.reason, "stop");
  assert.equal(toolSignal?.aborted, true); // the chat ended, so the tool's signal aborted
});

test("finish_messages_continue_the_conversation", async () => {
  const first = await client.run({ model: "scripted/weather", prompt: "Weather in Paris?", tools: { get_weather: getWeather } });
  const history = [{ role: "user" as const, content: "Weather in Paris?" }, ...first.messages, { role: "user" as const, content: "Thanks, and now echo this" }];
  const second = await client.run({ model: "scripted/echo", messages: history });
  assert.equal(second.text, "Thanks, and now echo this");
});

test("list_models", async () => {
  const ids = new Set((await client.listModels()).map((model) => model.id));
  for (const id of ["scripted/echo", "scripted/weather", "scripted/slow"]) {
    assert.ok(ids.has(id), `${id} in ${[...ids].join(", ")}`);
  }
});

/** What scripted/paced says, in 10 chunks 40 ms apart (tests/scripts/paced.json). */
const PACED_TEXT = "The quick brown fox jumps over the lazy dog, twice.";

test("a_text_window_sends_fewer_larger_text_deltas", async () => {
  const events = await collect({ model: "scripted/paced", tools: {}, textCoalesceWindowMs: 200 });
  const deltas = only(events, "text").map((e) => e.text);
  assert.equal(deltas.join(""), PACED_TEXT);
  assert.equal(lastFinish(events).text, PACED_TEXT);
  assert.ok(deltas.length < 10, `${deltas.length} text events for 10 chunks: ${JSON.stringify(deltas)}`);
});

test("fifty_concurrent_chats", async () => {
  const finishes = await Promise.all(
    Array.from({ length: 50 }, () => client.run({ model: "scripted/parallel", prompt: "both", tools: TOOLS })),
  );
  for (const finish of finishes) {
    assert.deepEqual([finish.reason, finish.toolsCalled], ["stop", ["get_weather", "get_time"]]);
  }
});

const MEBIBYTE = 1024 * 1024;
/**
 * The size of each read_page result: under the server's max_tool_result_bytes (1 MiB) and
 * max_request_bytes (4 MiB), while the five pages of scripted/big_results make a finish over 4 MiB.
 */
const PAGE_CHARACTERS = 1_000_000;
const readPage = {
  description: "One page of a long document.",
  parameters: { type: "object", properties: { page: { type: "integer" } }, required: ["page"] },
  run: ({ page }: { page: number }) => {
    const prefix = `page ${page}: `;
    return prefix + "x".repeat(PAGE_CHARACTERS - prefix.length);
  },
};
const BIG_RESULTS: ChatOptions = { model: "scripted/big_results", prompt: "Read the document.", tools: { read_page: readPage } };

test("a_finish_over_4_mib_arrives", async () => {
  const finish = await client.run(BIG_RESULTS);
  assert.deepEqual([finish.reason, finish.text, finish.rounds], ["stop", "Read five pages.", 6]);
  const results = finish.messages.filter((m) => m.role === "tool").map((m) => m.content);
  assert.deepEqual(results.map((r) => r.slice(0, r.indexOf(":"))), ["page 1", "page 2", "page 3", "page 4", "page 5"]);
  assert.ok(results.every((r) => r.length === PAGE_CHARACTERS));
  const total = results.reduce((sum, r) => sum + r.length, 0);
  assert.ok(total > 4 * MEBIBYTE, `the tool results add up to ${total} bytes, want over 4 MiB`);
});

test("a_finish_over_the_receive_limit_is_resource_exhausted", async () => {
  const small = new Client(server.target, { maxReceiveMessageBytes: 4 * MEBIBYTE });
  await assert.rejects(small.run(BIG_RESULTS), (error) => {
    assert.ok(error instanceof ToolwireError);
    assert.equal(error.codeName, "RESOURCE_EXHAUSTED");
    assert.match(error.details, /readMaxBytes/);
    return true;
  });
  small.close();
});

test("a_receive_limit_with_your_own_transport_is_refused", () => {
  const transport = createGrpcTransport({ baseUrl: `http://${server.target}` });
  assert.throws(() => new Client(server.target, { transport, maxReceiveMessageBytes: MEBIBYTE }), /readMaxBytes/);
});

test("breaking_out_of_for_await_cancels_the_chat", async () => {
  let toolSignal: AbortSignal | undefined;
  const waiting = {
    ...getWeather,
    run: (_: unknown, { signal }: { signal: AbortSignal }) => {
      toolSignal = signal;
      return new Promise((resolve) => signal.addEventListener("abort", () => resolve("stopped")));
    },
  };
  const seen: string[] = [];
  for await (const event of client.chat({ model: "scripted/weather", prompt: "hi", tools: { get_weather: waiting } })) {
    seen.push(event.type);
    if (event.type === "toolRequest") {
      break;
    }
  }
  // The server may merge text deltas queued behind a write in flight into one event.
  const kinds = seen.filter((kind, index) => !(kind === "text" && seen[index - 1] === "text"));
  assert.deepEqual(kinds, ["started", "text", "toolRequest"]);
  assert.equal(toolSignal?.aborted, true);
  const finish = await client.run({ model: "scripted/echo", prompt: "still here" });
  assert.equal(finish.text, "still here");
});

test("an_aborted_signal_rejects_before_the_chat_opens", async () => {
  const reason = new Error("never mind");
  await assert.rejects(client.run({ model: "scripted/echo", prompt: "hi", signal: AbortSignal.abort(reason) }), (error) => error === reason);
  const aborted = AbortSignal.abort();
  await assert.rejects(client.listModels({ signal: aborted }), (error) => error instanceof Error && error.name === "AbortError");
});

test("a_closed_client_finishes_its_chats_and_refuses_new_calls", async () => {
  const closed = new Client(server.target);
  let finish: FinishEvent | undefined;
  for await (const event of closed.chat({ model: "scripted/weather", prompt: "hi", tools: TOOLS })) {
    if (event.type === "started") {
      closed.close(); // the chat in flight still finishes
    } else if (event.type === "finish") {
      finish = event;
    }
  }
  assert.deepEqual([finish?.reason, finish?.toolsCalled], ["stop", ["get_weather"]]);
  await assert.rejects(closed.listModels(), /this Client is closed/);
  assert.throws(() => closed.chat({ model: "scripted/echo", prompt: "twice" }), /this Client is closed/);
});

test("a_connection_refused_is_a_typed_unavailable_error", async () => {
  const nobody = new Client("127.0.0.1:1");
  await assert.rejects(nobody.listModels(), (error) => error instanceof ToolwireError && error.codeName === "UNAVAILABLE");
  nobody.close();
});

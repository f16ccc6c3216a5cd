// Tool spans: with an SDK tracer provider registered globally (this file runs in its own process),
// each tool run is a span `execute_tool {name}` that is a child of the server's span.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, beforeEach, test } from "node:test";
import { fileURLToPath } from "node:url";

import { context, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";

import { Client, type ToolRequestEvent } from "../src/index.js";
import { startServer } from "../src/testing.js";
import { type ToolContext, runTool } from "../src/tools.js";
import { parseTraceParent } from "../src/tracing.js";

const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const SERVER_SPAN_ID = "b7ad6b7169203331";
const TRACEPARENT = `00-${TRACE_ID}-${SERVER_SPAN_ID}-01`;

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager();

before(() => {
  assert.ok(context.setGlobalContextManager(contextManager.enable()));
  assert.ok(trace.setGlobalTracerProvider(provider));
});

beforeEach(() => exporter.reset());

after(async () => {
  trace.disable();
  context.disable();
  await provider.shutdown();
});

function toolContext(traceContext: Record<string, string>, toolCallId = "call_1"): ToolContext {
  return { signal: new AbortController().signal, toolCallId, traceContext };
}

function onlySpan(name: string): ReadableSpan {
  const spans = exporter.getFinishedSpans().filter((span) => span.name === name);
  assert.equal(spans.length, 1, `spans named ${name}: ${exporter.getFinishedSpans().map((s) => s.name).join(", ")}`);
  return spans[0]!;
}

test("parse_traceparent", () => {
  assert.deepEqual(parseTraceParent(TRACEPARENT), { traceId: TRACE_ID, spanId: SERVER_SPAN_ID, traceFlags: 1 });
  assert.deepEqual(parseTraceParent(` 00-${TRACE_ID}-${SERVER_SPAN_ID}-00 `)?.traceFlags, 0);
  // A later version may add fields after the flags.
  assert.deepEqual(parseTraceParent(`01-${TRACE_ID}-${SERVER_SPAN_ID}-01-extra`)?.spanId, SERVER_SPAN_ID);
  for (const bad of [
    undefined,
    "",
    `00-${TRACE_ID}-${SERVER_SPAN_ID}-01-extra`, // version 00 has exactly four fields
    `ff-${TRACE_ID}-${SERVER_SPAN_ID}-01`,
    `00-${"0".repeat(32)}-${SERVER_SPAN_ID}-01`,
    `00-${TRACE_ID}-${"0".repeat(16)}-01`,
    `00-${TRACE_ID.toUpperCase()}-${SERVER_SPAN_ID}-01`,
    `00-${TRACE_ID.slice(1)}-${SERVER_SPAN_ID}-01`,
    "not a traceparent",
  ]) {
    assert.equal(parseTraceParent(bad), undefined, String(bad));
  }
});

test("a_tool_span_is_a_child_of_the_server_span", async () => {
  let active: Span | undefined;
  let activeAfterAwait: Span | undefined;
  const outcome = await runTool(
    "get_weather",
    async () => {
      active = trace.getActiveSpan();
      await sleep(5);
      activeAfterAwait = trace.getActiveSpan();
      // A span the tool opens nests under the tool span.
      trace.getTracer("the.tool").startActiveSpan("http GET", (inner) => inner.end());
      return "sunny";
    },
    { location: "Paris" },
    toolContext({ traceparent: TRACEPARENT, tracestate: "vendor=value" }),
  );
  assert.deepEqual(outcome, { content: "sunny", isError: false });

  const span = onlySpan("execute_tool get_weather");
  assert.equal(span.kind, SpanKind.INTERNAL);
  assert.equal(span.instrumentationScope.name, "toolwire.client");
  assert.equal(span.spanContext().traceId, TRACE_ID);
  assert.equal(span.parentSpanContext?.spanId, SERVER_SPAN_ID);
  assert.equal(span.parentSpanContext?.isRemote, true);
  assert.equal(span.spanContext().traceState?.get("vendor"), "value");
  assert.deepEqual(span.attributes, {
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "get_weather",
    "gen_ai.tool.call.id": "call_1",
    "gen_ai.tool.type": "function",
  });
  assert.equal(span.status.code, SpanStatusCode.UNSET);

  // While the tool runs, its span is the active one, across awaits too.
  assert.equal(active?.spanContext().spanId, span.spanContext().spanId);
  assert.equal(activeAfterAwait?.spanContext().spanId, span.spanContext().spanId);
  const inner = onlySpan("http GET");
  assert.equal(inner.spanContext().traceId, TRACE_ID);
  assert.equal(inner.parentSpanContext?.spanId, span.spanContext().spanId);
});

test("a_throwing_tool_marks_its_span_as_an_error", async () => {
  const outcome = await runTool(
    "get_weather",
    () => {
      throw new RangeError("weather service down");
    },
    {},
    toolContext({ traceparent: TRACEPARENT }, "call_e"),
  );
  assert.deepEqual(outcome, { content: "RangeError: weather service down", isError: true });
  const span = onlySpan("execute_tool get_weather");
  assert.equal(span.attributes["error.type"], "tool_error");
  assert.equal(span.attributes["gen_ai.tool.call.id"], "call_e");
  assert.deepEqual(span.status, { code: SpanStatusCode.ERROR, message: "RangeError: weather service down" });
  assert.equal(span.parentSpanContext?.spanId, SERVER_SPAN_ID);
});

test("without_a_traceparent_the_tool_span_joins_the_active_span", async () => {
  // The server does not trace: the tool span is a child of the application's span, if any.
  await trace.getTracer("the.app").startActiveSpan("app request", async (appSpan) => {
    await runTool("get_time", () => "12:00", {}, toolContext({}));
    appSpan.end();
  });
  const app = onlySpan("app request");
  const underApp = onlySpan("execute_tool get_time");
  assert.equal(underApp.parentSpanContext?.spanId, app.spanContext().spanId);
  assert.equal(underApp.spanContext().traceId, app.spanContext().traceId);

  exporter.reset();
  await runTool("get_time", () => "12:00", {}, toolContext({ traceparent: "garbage" }));
  assert.equal(onlySpan("execute_tool get_time").parentSpanContext, undefined); // a root span
});

test("without_opentelemetry_tools_run_untraced", () => {
  // A fresh process in which `@opentelemetry/api` cannot be resolved, as when it is not installed.
  const folder = mkdtempSync(join(tmpdir(), "toolwire-no-otel-"));
  try {
    writeFileSync(
      join(folder, "hooks.mjs"),
      `export async function resolve(specifier, context, next) {
        if (specifier === "@opentelemetry/api") {
          throw Object.assign(new Error("Cannot find package '@opentelemetry/api'"), { code: "ERR_MODULE_NOT_FOUND" });
        }
        return next(specifier, context);
      }\n`,
    );
    writeFileSync(join(folder, "register.mjs"), `import { register } from "node:module";\nregister("./hooks.mjs", import.meta.url);\n`);
    const tools = new URL("../src/tools.js", import.meta.url).href;
    const script = `
      import { runTool } from ${JSON.stringify(tools)};
      const blocked = await import("@opentelemetry/api").then(() => false, () => true);
      const context = { signal: new AbortController().signal, toolCallId: "c", traceContext: { traceparent: ${JSON.stringify(TRACEPARENT)} } };
      const outcomes = [];
      for (let i = 0; i < 2; i++) {
        outcomes.push(await runTool("t", ({ n }) => n * 2, { n: 21 }, context));
        outcomes.push(await runTool("t", () => { throw new TypeError("bad"); }, {}, context));
      }
      console.log(JSON.stringify({ blocked, outcomes }));
    `;
    const out = execFileSync(process.execPath, ["--import", join(folder, "register.mjs"), "--input-type=module", "-e", script], {
      cwd: fileURLToPath(new URL(".", import.meta.url)),
      encoding: "utf8",
    });
    const ok = { content: "42", isError: false };
    const failed = { content: "TypeError: bad", isError: true };
    assert.deepEqual(JSON.parse(out), { blocked: true, outcomes: [ok, failed, ok, failed] });
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test("tool_spans_join_the_real_servers_trace", async () => {
  // The server traces only when an exporter is configured; the console exporter writes to stdout.
  const server = await startServer(undefined, { env: { OTEL_TRACES_EXPORTER: "console", OTEL_METRICS_EXPORTER: "none" } });
  const client = new Client(server.target);
  const requests: ToolRequestEvent[] = [];
  let inTool: Span | undefined;
  try {
    const tools = {
      get_weather: {
        parameters: { type: "object", properties: { location: { type: "string" } }, required: ["location"] },
        run: () => {
          inTool = trace.getActiveSpan();
          return { sky: "sunny" };
        },
      },
    };
    for await (const event of client.chat({ model: "scripted/weather", prompt: "Weather in Paris?", tools })) {
      if (event.type === "toolRequest") {
        requests.push(event);
      }
    }
  } finally {
    client.close();
    await server.stop();
  }
  assert.equal(requests.length, 1);
  const sent = parseTraceParent(requests[0]!.traceContext.traceparent);
  assert.ok(sent, `the server sent no valid traceparent: ${JSON.stringify(requests[0]!.traceContext)}`);

  const span = onlySpan("execute_tool get_weather");
  assert.equal(span.spanContext().traceId, sent.traceId);
  assert.equal(span.parentSpanContext?.spanId, sent.spanId);
  assert.equal(span.attributes["gen_ai.tool.call.id"], requests[0]!.toolCallId);
  assert.equal(inTool?.spanContext().spanId, span.spanContext().spanId);

  // And that parent is the server's own execute_tool span, as its console exporter wrote it
  // (one indented JSON object per span).
  const serverSpans = server
    .stdout()
    .split(/^}$/m)
    .filter((text) => text.trim() !== "")
    .map((text) => JSON.parse(`${text}}`) as { name: string; context: { trace_id: string; span_id: string } });
  const serverTool = serverSpans.filter((s) => s.name === "execute_tool get_weather");
  assert.equal(serverTool.length, 1, serverSpans.map((s) => s.name).join(", "));
  assert.deepEqual(serverTool[0]!.context, { ...serverTool[0]!.context, trace_id: `0x${sent.traceId}`, span_id: `0x${sent.spanId}` });
});

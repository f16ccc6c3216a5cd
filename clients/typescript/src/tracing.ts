/**
 * A span around each tool run, joined to the server's trace, when OpenTelemetry is installed.
 *
 * The server sends the W3C context of its `execute_tool {tool}` span in every ToolRequest. When
 * the optional peer dependency `@opentelemetry/api` can be imported, the client runs the tool
 * inside a span `execute_tool {name}` that is a child of it, made by the application's global
 * tracer provider (so it is exported wherever the application's own spans go), and active while
 * the tool runs (spans the tool opens nest under it). Without the package, tools run as they do
 * without tracing; with the package but no provider registered, the API's no-op tracer costs
 * next to nothing.
 *
 * The parent comes from `traceparent` parsed here, not from `propagation.extract`: that uses the
 * application's global propagator, which is a no-op unless the application set one (or may be a
 * different format), while the server always sends W3C trace context.
 *
 * @module
 */
import type { ToolOutcome } from "./tools.js";

/** The `@opentelemetry/api` module (a type only: the module itself is imported on first use). */
type Api = typeof import("@opentelemetry/api");

/** The tracer's name (the instrumentation scope), as in the Python and Go clients. */
export const TRACER_NAME = "toolwire.client";

/** `undefined`: not tried yet; `null`: not installed (or failed to load). */
let api: Api | null | undefined;
let loading: Promise<Api | null> | undefined;

/** `@opentelemetry/api` when it can be imported, else `null`; imported once, then cached. */
function openTelemetry(): Api | null | Promise<Api | null> {
  if (api !== undefined) {
    return api;
  }
  loading ??= import("@opentelemetry/api").then(
    (module) => (api = module),
    () => (api = null),
  );
  return loading;
}

/** The parts of a W3C `traceparent` (lowercase hex), or `undefined` when it is not a valid one. */
export interface TraceParent {
  traceId: string;
  spanId: string;
  traceFlags: number;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * Parses a W3C `traceparent` header value (Trace Context level 1): `version-traceid-spanid-flags`.
 * Version `ff` and all-zero ids are invalid; a version after `00` may carry more fields after
 * the flags (ignored), version `00` may not.
 */
export function parseTraceParent(value: string | undefined): TraceParent | undefined {
  const match = TRACEPARENT.exec(value?.trim() ?? "");
  if (match === null) {
    return undefined;
  }
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  if (version === "ff" || (version === "00" && rest !== undefined) || /^0+$/.test(traceId) || /^0+$/.test(spanId)) {
    return undefined;
  }
  return { traceId, spanId, traceFlags: parseInt(flags, 16) };
}

/**
 * Runs `body` (one tool call, which never rejects) inside a span `execute_tool {name}` when
 * OpenTelemetry is installed; otherwise just runs it.
 */
export function inToolSpan(
  name: string,
  toolCallId: string,
  traceContext: Record<string, string>,
  body: () => Promise<ToolOutcome>,
): Promise<ToolOutcome> {
  const loaded = openTelemetry();
  if (loaded === null) {
    return body();
  }
  if (loaded instanceof Promise) {
    return loaded.then((module) => (module === null ? body() : traced(module, name, toolCallId, traceContext, body)));
  }
  return traced(loaded, name, toolCallId, traceContext, body);
}

async function traced(
  otel: Api,
  name: string,
  toolCallId: string,
  traceContext: Record<string, string>,
  body: () => Promise<ToolOutcome>,
): Promise<ToolOutcome> {
  const parent = parentContext(otel, traceContext);
  const span = otel.trace.getTracer(TRACER_NAME).startSpan(
    `execute_tool ${name}`,
    {
      kind: otel.SpanKind.INTERNAL,
      attributes: {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": toolCallId,
        "gen_ai.tool.type": "function",
      },
    },
    parent,
  );
  try {
    const outcome = await otel.context.with(otel.trace.setSpan(parent, span), body);
    if (outcome.isError) {
      span.setAttribute("error.type", "tool_error");
      span.setStatus({ code: otel.SpanStatusCode.ERROR, message: outcome.content.slice(0, 200) });
    }
    return outcome;
  } finally {
    span.end();
  }
}

/**
 * The server's span as a remote parent; without a valid `traceparent` (the server does not
 * trace), the active context, so the tool span joins whatever span the application has open.
 */
function parentContext(otel: Api, traceContext: Record<string, string>): ReturnType<Api["context"]["active"]> {
  const parsed = parseTraceParent(traceContext.traceparent);
  if (parsed === undefined) {
    return otel.context.active();
  }
  const tracestate = traceContext.tracestate;
  const traceState =
    tracestate !== undefined && tracestate.trim() !== "" && typeof otel.createTraceState === "function"
      ? otel.createTraceState(tracestate)
      : undefined;
  return otel.trace.setSpanContext(otel.ROOT_CONTEXT, {
    ...parsed,
    isRemote: true,
    ...(traceState === undefined ? {} : { traceState }),
  });
}

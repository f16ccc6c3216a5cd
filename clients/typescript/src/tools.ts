/**
 * Tools as a map of name → definition, and running one tool call. Pure apart from calling `run`
 * (and opening a span for it when OpenTelemetry is installed).
 *
 * @module
 */
import { inToolSpan } from "./tracing.js";

/** What a tool's `run` receives besides the arguments. */
export interface ToolContext {
  /** Aborts when the chat ends (finish, error, cancel or `break`) before the tool returned. */
  signal: AbortSignal;
  /** The id of the call being answered. */
  toolCallId: string;
  /** W3C trace context of the server's span for this call; empty when the server does not trace. */
  traceContext: Record<string, string>;
}

/** A JSON Schema (draft 2020-12) object describing a tool's arguments. */
export type JsonSchema = Record<string, unknown>;

/**
 * One tool the model may call, keyed by its name in `ChatOptions.tools`.
 *
 * With `run`, the client runs every call and sends the result: a string as is, anything else
 * as `JSON.stringify(value)`; a thrown error becomes an error result `${name}: ${message}`.
 * Without `run` the tool is manual: answer its `toolRequest` events with
 * `ChatSession.sendResult` (see `Client.chatSession`).
 */
export interface Tool<Args = any> {
  /** What the tool does, for the model. */
  description?: string;
  /** The arguments' JSON Schema object; omitted means the tool takes no arguments. */
  parameters?: JsonSchema;
  /** Runs one call with the parsed arguments (validated by the server against `parameters`). */
  run?: (args: Args, context: ToolContext) => unknown;
}

/** The tools of a chat: name (letters, digits, `_`, `-`; at most 64 characters) → tool. */
export type Tools = Record<string, Tool>;

/** A tool call's outcome as sent to the server. */
export interface ToolOutcome {
  /** The result text for the model. */
  content: string;
  /** True when the tool threw. */
  isError: boolean;
}

/**
 * Runs the tool `name`'s `run` with the arguments; a thrown error (or rejection) becomes an error
 * outcome. With OpenTelemetry installed it runs inside a span `execute_tool {name}`, a child of the
 * server's span for the call (see tracing.ts).
 */
export function runTool(
  name: string,
  run: NonNullable<Tool["run"]>,
  args: Record<string, unknown>,
  context: ToolContext,
): Promise<ToolOutcome> {
  return inToolSpan(name, context.toolCallId, context.traceContext, async () => {
    try {
      return { content: resultContent(await run(args, context)), isError: false };
    } catch (error) {
      return { content: errorContent(error), isError: true };
    }
  });
}

/** A tool's return value as text for the model: a string as is, anything else as JSON. */
export function resultContent(result: unknown): string {
  if (typeof result === "string") {
    return result;
  }
  const json: string | undefined = JSON.stringify(result);
  if (json === undefined) {
    // undefined, a function or a symbol: JSON has no text for them; null says "no result".
    return "null";
  }
  return json;
}

/** A thrown value as text for the model: `${name}: ${message}` for an Error. */
export function errorContent(error: unknown): string {
  if (error instanceof Error) {
    return `${error.name}: ${error.message}`;
  }
  return `Error: ${String(error)}`;
}

/**
 * The toolwire TypeScript client: stream a model's answer over gRPC and run its tool calls here.
 *
 * @example
 * ```ts
 * const client = createClient("127.0.0.1:50051");
 * for await (const event of client.chat({ model: "scripted/echo", prompt: "Hi" })) {
 *   if (event.type === "text") process.stdout.write(event.text);
 * }
 * client.close();
 * ```
 *
 * @module
 */
export { Client, type ClientOptions, createClient, DEFAULT_MAX_RECEIVE_MESSAGE_BYTES, type ModelInfo } from "./client.js";
export { Code, codeNameOf, ToolwireError } from "./errors.js";
export type {
  ChatEvent,
  FinishEvent,
  FinishReason,
  Message,
  MessageInit,
  Role,
  StartedEvent,
  TextEvent,
  ToolArgumentsDeltaEvent,
  ToolCall,
  ToolCallAbandonedEvent,
  ToolCallRejectedEvent,
  ToolRequestEvent,
  ToolResultSentEvent,
  UsageEvent,
} from "./events.js";
export type { ChatOptions, ToolChoice } from "./options.js";
export { type ChatCall, ChatSession } from "./session.js";
export type { JsonSchema, Tool, ToolContext, Tools } from "./tools.js";

/**
 * The chat's events and messages as plain objects, and their conversion from and to the
 * generated protobuf types. Everything here is pure.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";

import { Code, ToolwireError } from "./errors.js";
import {
  type ChatFinish,
  type ChatResponse,
  FinishReason as ProtoFinishReason,
  type Message as ProtoMessage,
  MessageSchema,
  Role as ProtoRole,
  type ToolRequest as ProtoToolRequest,
  type Usage,
} from "./gen/toolwire/v1/chat_pb.js";

/** Who wrote a message. */
export type Role = "system" | "user" | "assistant" | "tool";

/** One tool call an assistant message made. */
export interface ToolCall {
  /** The call's id, unique within the chat. */
  id: string;
  /** The tool's name. */
  name: string;
  /** The arguments as JSON text of an object. */
  argumentsJson: string;
}

/** One turn of the conversation, as `finish.messages` holds it (every field set). */
export interface Message {
  /** Who wrote it. */
  role: Role;
  /** The text; may be empty for an assistant message that only calls tools. */
  content: string;
  /** The tool calls an assistant message made, in order. */
  toolCalls: ToolCall[];
  /** For a tool message: the id of the call it answers. */
  toolCallId: string;
  /** For a tool message: true when `content` describes a failure. */
  isError: boolean;
}

/** A message to send: `role` and whichever other fields apply, e.g. `{ role: "user", content: "Hi" }`. */
export type MessageInit = Pick<Message, "role"> & Partial<Omit<Message, "role">>;

/** Why a chat ended. */
export type FinishReason = "stop" | "length" | "max_tool_rounds" | "content_filter" | "other";

/** The first event of every chat. */
export interface StartedEvent {
  type: "started";
  /** The server's id for this chat, as it appears in the server's logs. */
  chatId: string;
  /** The model serving the chat. */
  model: string;
}

/** A piece of the model's text, to append to what came before in the same round. */
export interface TextEvent {
  type: "text";
  text: string;
  /** The model call (1-based) that produced it. */
  round: number;
}

/** A piece of a tool call's arguments as the model writes them (opt-in; informational). */
export interface ToolArgumentsDeltaEvent {
  type: "toolArgumentsDelta";
  toolCallId: string;
  /** The tool's name as the model wrote it (may be a tool that does not exist). */
  name: string;
  /** The next piece of the arguments' JSON text; not JSON on its own. */
  argumentsDelta: string;
  round: number;
}

/** The model called a tool. Tools with `run` are answered automatically; others by `sendResult`. */
export interface ToolRequestEvent {
  type: "toolRequest";
  /** The id to answer with. */
  toolCallId: string;
  name: string;
  /** The arguments, parsed: always an object that validates against the tool's schema. */
  arguments: Record<string, unknown>;
  /** The arguments as the JSON text the server sent. */
  argumentsJson: string;
  round: number;
  /**
   * W3C trace context of the server's span for this call (`traceparent`, and `tracestate` when
   * there is one); empty when the server does not trace. A span opened for running the tool can
   * be made its child so the tool shows up inside the chat's trace.
   */
  traceContext: Record<string, string>;
}

/** A tool's result was sent to the server (a tool with `run`). */
export interface ToolResultSentEvent {
  type: "toolResultSent";
  toolCallId: string;
  name: string;
  /** The result text the model reads: a string as returned, anything else as JSON. */
  content: string;
  /** True when the tool threw; `content` is then `${error.name}: ${error.message}`. */
  isError: boolean;
}

/** The server stopped waiting for a tool call's result (it timed out); a late result is ignored. */
export interface ToolCallAbandonedEvent {
  type: "toolCallAbandoned";
  toolCallId: string;
  reason: string;
  round: number;
}

/** A tool call the server refused and answered itself (e.g. an unknown tool); nothing to do. */
export interface ToolCallRejectedEvent {
  type: "toolCallRejected";
  toolCallId: string;
  name: string;
  argumentsJson: string;
  /** The error result the server gave the model instead. */
  reason: string;
  round: number;
}

/** Token usage of one model call. A count the provider did not report is `undefined`, not 0. */
export interface UsageEvent {
  type: "usage";
  round: number;
  inputTokens: number | undefined;
  outputTokens: number | undefined;
}

/** The end of a chat that completed: always the last event. */
export interface FinishEvent {
  type: "finish";
  reason: FinishReason;
  /** The final answer: the text of the last model call. */
  text: string;
  /** The name of every tool call sent to the client, in order. */
  toolsCalled: string[];
  /** Content chunks received from the model over all rounds. */
  chunksReceived: number;
  /** Model calls made: one tool round plus the answer is 2. */
  rounds: number;
  /** Tokens read over all model calls; `undefined` (unknown) if any call did not report it. */
  inputTokens: number | undefined;
  /** Tokens written over all model calls; `undefined` (unknown) if any call did not report it. */
  outputTokens: number | undefined;
  /** Wall time on the server from the start to this event, in milliseconds. */
  durationMs: number;
  /** Every message the chat appended; append them to the history you sent to continue it. */
  messages: Message[];
  /** The model that served the chat. */
  model: string;
}

/** Everything a chat yields, discriminated on `type`. */
export type ChatEvent =
  | StartedEvent
  | TextEvent
  | ToolArgumentsDeltaEvent
  | ToolRequestEvent
  | ToolResultSentEvent
  | ToolCallAbandonedEvent
  | ToolCallRejectedEvent
  | UsageEvent
  | FinishEvent;

const ROLES_TO_PROTO: Record<Role, ProtoRole> = {
  system: ProtoRole.SYSTEM,
  user: ProtoRole.USER,
  assistant: ProtoRole.ASSISTANT,
  tool: ProtoRole.TOOL,
};

const FINISH_REASONS: Partial<Record<ProtoFinishReason, FinishReason>> = {
  [ProtoFinishReason.STOP]: "stop",
  [ProtoFinishReason.LENGTH]: "length",
  [ProtoFinishReason.MAX_TOOL_ROUNDS]: "max_tool_rounds",
  [ProtoFinishReason.CONTENT_FILTER]: "content_filter",
  [ProtoFinishReason.OTHER]: "other",
};

/** Converts a message to send to the proto `Message`; throws a TypeError for an unknown role. */
export function messageToProto(message: MessageInit): ProtoMessage {
  const role = ROLES_TO_PROTO[message.role];
  if (role === undefined) {
    throw new TypeError(`message role ${JSON.stringify(message.role)} is not one of ${Object.keys(ROLES_TO_PROTO).join(", ")}`);
  }
  return create(MessageSchema, {
    role,
    content: message.content ?? "",
    toolCalls: (message.toolCalls ?? []).map((call) => ({ ...call })),
    toolCallId: message.toolCallId ?? "",
    isError: message.isError ?? false,
  });
}

/** Converts a proto `Message`; throws a TypeError for an unset or unknown role. */
export function messageFromProto(message: ProtoMessage): Message {
  const role = (Object.keys(ROLES_TO_PROTO) as Role[]).find((name) => ROLES_TO_PROTO[name] === message.role);
  if (role === undefined) {
    throw new TypeError(`proto message has role ${message.role}, which is not a known toolwire role`);
  }
  return {
    role,
    content: message.content,
    toolCalls: message.toolCalls.map((call) => ({ id: call.id, name: call.name, argumentsJson: call.argumentsJson })),
    toolCallId: message.toolCallId,
    isError: message.isError,
  };
}

/** Converts one server event; `undefined` for an event kind this client does not know. */
export function eventFromProto(response: ChatResponse): ChatEvent | undefined {
  const event = response.event;
  switch (event.case) {
    case "started":
      return { type: "started", chatId: event.value.chatId, model: event.value.model };
    case "textDelta":
      return { type: "text", text: event.value.text, round: event.value.round };
    case "toolRequest":
      return toolRequestFromProto(event.value);
    case "toolArgumentsDelta": {
      const { toolCallId, name, argumentsDelta, round } = event.value;
      return { type: "toolArgumentsDelta", toolCallId, name, argumentsDelta, round };
    }
    case "toolCallAbandoned": {
      const { toolCallId, reason, round } = event.value;
      return { type: "toolCallAbandoned", toolCallId, reason, round };
    }
    case "toolCallRejected": {
      const { toolCallId, name, argumentsJson, reason, round } = event.value;
      return { type: "toolCallRejected", toolCallId, name, argumentsJson, reason, round };
    }
    case "usage":
      return { type: "usage", round: event.value.round, ...usageFromProto(event.value.usage) };
    case "finish":
      return finishFromProto(event.value);
    default:
      return undefined;
  }
}

/** Converts a `ChatFinish`; an unset or unknown reason becomes "other". */
export function finishFromProto(finish: ChatFinish): FinishEvent {
  return {
    type: "finish",
    reason: FINISH_REASONS[finish.reason] ?? "other",
    text: finish.text,
    toolsCalled: [...finish.toolsCalled],
    chunksReceived: Number(finish.chunksReceived),
    rounds: finish.rounds,
    ...usageFromProto(finish.usage),
    durationMs: finish.duration === undefined ? 0 : durationMs(finish.duration),
    messages: finish.messages.map(messageFromProto),
    model: finish.model,
  };
}

/** The two counts, `undefined` for a count the server left unset (unknown, not 0). */
function usageFromProto(usage: Usage | undefined): Pick<UsageEvent, "inputTokens" | "outputTokens"> {
  return {
    inputTokens: usage?.inputTokens === undefined ? undefined : Number(usage.inputTokens),
    outputTokens: usage?.outputTokens === undefined ? undefined : Number(usage.outputTokens),
  };
}

/** Parses the arguments; arguments that are not a JSON object are the server's fault (INTERNAL). */
function toolRequestFromProto(request: ProtoToolRequest): ToolRequestEvent {
  const { toolCallId, name, argumentsJson, round } = request;
  const traceContext = { ...request.traceContext };
  let parsed: unknown = {};
  try {
    parsed = argumentsJson.trim() === "" ? {} : JSON.parse(argumentsJson);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ToolwireError(
      Code.Internal,
      `the server sent tool call ${JSON.stringify(toolCallId)} (${name}) with arguments that are not a JSON object: ${argumentsJson.slice(0, 200)}`,
    );
  }
  return { type: "toolRequest", toolCallId, name, arguments: parsed as Record<string, unknown>, argumentsJson, round, traceContext };
}

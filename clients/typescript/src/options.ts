/**
 * The options of a chat and their conversion to the proto `ChatStart`. Pure.
 *
 * @module
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";

import { type MessageInit, messageToProto } from "./events.js";
import {
  type ChatStart,
  ChatStartSchema,
  ToolChoiceMode,
  type ToolChoiceSchema,
  type ToolDefinitionSchema,
} from "./gen/toolwire/v1/chat_pb.js";
import type { Tools } from "./tools.js";

/** Whether and which tool the model must call: a mode, or `{ tool: name }` for one tool. */
export type ToolChoice = "auto" | "none" | "required" | { tool: string };

/** One chat: the model, the conversation (`prompt` or `messages`), the tools and the options. */
export interface ChatOptions {
  /** The model as `provider/model-name`, e.g. "scripted/weather". */
  model: string;
  /** One user message; give this or `messages`. */
  prompt?: string;
  /** The conversation so far, oldest first; give this or `prompt`. */
  messages?: readonly MessageInit[];
  /** The tools the model may call, by name. */
  tools?: Tools;
  /** The most model turns that may end in tool calls; 0 or unset: the server default (10). */
  maxToolRounds?: number;
  /** How long the server waits for each tool result, in ms; unset: the server default. */
  toolTimeoutMs?: number;
  /** Sampling temperature; unset: the provider default. */
  temperature?: number;
  /** Nucleus sampling mass; unset: the provider default. */
  topP?: number;
  /** The most tokens per model call; 0 or unset: the provider default. */
  maxOutputTokens?: number;
  /** Sequences that end generation. */
  stop?: readonly string[];
  /** Whether and which tool the model must call; unset: the model decides. */
  toolChoice?: ToolChoice;
  /** Whether the model may call several tools per turn; unset: the provider default. */
  parallelToolCalls?: boolean;
  /** Also yield `toolArgumentsDelta` events while the model writes a call's arguments. */
  streamToolArguments?: boolean;
  /**
   * How long the server may hold the model's text after each `text` event it sends, in ms, so
   * fast text arrives as fewer, larger `text` events. The first text of each round is never
   * held, any other event first sends what is held, and the joined text is the same. 0 or unset:
   * no window; at most the server's limit (1000 ms by default).
   */
  textCoalesceWindowMs?: number;
  /** Cancels the chat; the iteration then rejects with `signal.reason`. */
  signal?: AbortSignal;
}

const TOOL_CHOICE_MODES = {
  auto: ToolChoiceMode.AUTO,
  none: ToolChoiceMode.NONE,
  required: ToolChoiceMode.REQUIRED,
} as const;

/** Builds the `ChatStart`; throws a TypeError unless exactly one of `prompt` and `messages` is given. */
export function startFromOptions(options: ChatOptions): ChatStart {
  return create(ChatStartSchema, {
    model: options.model,
    messages: messagesOf(options).map(messageToProto),
    tools: Object.entries(options.tools ?? {}).map(
      ([name, tool]): MessageInitShape<typeof ToolDefinitionSchema> => ({
        name,
        description: tool.description ?? "",
        parametersJsonSchema: tool.parameters === undefined ? "" : JSON.stringify(tool.parameters),
      }),
    ),
    maxToolRounds: options.maxToolRounds ?? 0,
    temperature: options.temperature,
    topP: options.topP,
    maxOutputTokens: options.maxOutputTokens ?? 0,
    stop: [...(options.stop ?? [])],
    toolChoice: options.toolChoice === undefined ? undefined : toolChoiceToProto(options.toolChoice),
    parallelToolCalls: options.parallelToolCalls,
    toolTimeout: options.toolTimeoutMs === undefined ? undefined : durationFromMs(options.toolTimeoutMs),
    streamToolArguments: options.streamToolArguments ?? false,
    textCoalesceWindow:
      options.textCoalesceWindowMs === undefined ? undefined : durationFromMs(options.textCoalesceWindowMs),
  });
}

function messagesOf(options: ChatOptions): readonly MessageInit[] {
  if ((options.prompt === undefined) === (options.messages === undefined)) {
    throw new TypeError("give a chat exactly one of `prompt` (one user message) and `messages` (the conversation)");
  }
  return options.messages ?? [{ role: "user", content: options.prompt }];
}

function toolChoiceToProto(choice: ToolChoice): MessageInitShape<typeof ToolChoiceSchema> {
  if (typeof choice === "string") {
    return { mode: TOOL_CHOICE_MODES[choice] };
  }
  return { mode: ToolChoiceMode.TOOL, toolName: choice.tool };
}

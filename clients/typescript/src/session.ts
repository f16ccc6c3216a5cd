/**
 * `ChatSession`: one open Chat stream, its events, and the tool results sent back on it.
 *
 * Server events are read only when the caller asks for the next event. A tool with `run` starts
 * as soon as its `toolRequest` arrives; its result is sent when it settles (so results go out in
 * completion order) and reported as a `toolResultSent` event. A `toolRequest` for a tool without
 * `run` is left to the caller, who answers it with `sendResult`.
 *
 * The request side stays open until `finish` arrives (the server fails a chat whose client
 * half-closes while a tool may still be called); then the session half-closes and reads the
 * stream to its end, so a late error status still rejects.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";

import { Code, ToolwireError } from "./errors.js";
import { type ChatEvent, eventFromProto, type ToolRequestEvent } from "./events.js";
import { type ChatRequest, ChatRequestSchema, type ChatResponse, type ChatStart } from "./gen/toolwire/v1/chat_pb.js";
import { runTool, type ToolOutcome, type Tools } from "./tools.js";

/** Opens the Chat call: the request stream and the signal that cancels it → the response stream. */
export type ChatCall = (requests: AsyncIterable<ChatRequest>, signal: AbortSignal) => AsyncIterable<ChatResponse>;

/**
 * One chat, opened when first iterated (once). Tools with `run` are answered automatically; answer
 * every other `toolRequest` with `sendResult`. Leaving the `for await` loop before `finish` (or
 * calling `close()`) cancels the chat and aborts the `signal` of tools still running.
 */
export class ChatSession implements AsyncIterable<ChatEvent> {
  readonly #call: ChatCall;
  readonly #start: ChatStart;
  readonly #tools: Tools;
  readonly #signal: AbortSignal | undefined;
  readonly #requests = new RequestQueue<ChatRequest>();
  /** Cancels the call. */
  readonly #callController = new AbortController();
  /** Aborts the tools' `signal` when the chat ends. */
  readonly #toolsController = new AbortController();
  readonly #ready: ChatEvent[] = [];
  readonly #awaitingCaller = new Set<string>();
  readonly #answered = new Set<string>();
  #wake: (() => void) | undefined;
  #opened = false;
  #finished = false;
  #closed = false;

  /** Used by `Client.chatSession`; not meant to be called directly. */
  constructor(call: ChatCall, start: ChatStart, tools: Tools, signal: AbortSignal | undefined) {
    this.#call = call;
    this.#start = start;
    this.#tools = tools;
    this.#signal = signal;
  }

  /** Opens the chat and yields its events; rejects with `ToolwireError`, or `signal.reason` on abort. */
  [Symbol.asyncIterator](): AsyncIterator<ChatEvent> {
    if (this.#opened) {
      throw new Error("this ChatSession was already iterated; open a new one for a new chat");
    }
    this.#opened = true;
    return this.#events();
  }

  /** Whether the session runs and answers calls to this tool itself (the tool has `run`). */
  runsAutomatically(toolName: string): boolean {
    return this.#tools[toolName]?.run !== undefined;
  }

  /**
   * Answers a `toolRequest` for a tool without `run`; `content` is the text the model reads.
   *
   * @throws Error when no unanswered `toolRequest` with this id arrived, or the chat has ended.
   */
  sendResult(toolCallId: string, content: string, options: { isError?: boolean } = {}): void {
    if (this.#answered.has(toolCallId)) {
      throw new Error(`tool call ${JSON.stringify(toolCallId)} was already answered; answer each call once`);
    }
    if (!this.#awaitingCaller.delete(toolCallId)) {
      throw new Error(`no toolRequest with toolCallId ${JSON.stringify(toolCallId)} arrived on this chat`);
    }
    if (this.#finished || this.#closed) {
      throw new Error(`the chat already ended; the result for ${JSON.stringify(toolCallId)} was not sent`);
    }
    this.#answered.add(toolCallId);
    this.#sendResult(toolCallId, { content, isError: options.isError ?? false });
  }

  /** Cancels the chat if it has not finished and aborts running tools' signals. Idempotent. */
  close(): void {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    this.#requests.close();
    this.#toolsController.abort();
    this.#callController.abort();
  }

  async *#events(): AsyncGenerator<ChatEvent, void, undefined> {
    const signal = this.#signal;
    const onAbort = (): void => this.close();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      signal?.throwIfAborted();
      this.#requests.push(create(ChatRequestSchema, { kind: { case: "start", value: this.#start } }));
      const responses = this.#call(this.#requests, this.#callController.signal)[Symbol.asyncIterator]();
      let read: Promise<IteratorResult<ChatResponse>> | undefined;
      while (true) {
        signal?.throwIfAborted();
        if (this.#closed) {
          return; // close() was called
        }
        const event = this.#ready.shift();
        if (event !== undefined) {
          yield event;
          continue;
        }
        if (this.#finished) {
          return;
        }
        read ??= responses.next();
        const toolDone = new Promise<undefined>((resolve) => (this.#wake = () => resolve(undefined)));
        const result = await Promise.race([read, toolDone]);
        if (result === undefined) {
          continue; // a tool's result was sent; its event is ready
        }
        read = undefined;
        if (result.done === true) {
          throw new ToolwireError(Code.Internal, "the server ended the chat stream without a finish event");
        }
        await this.#handle(result.value, responses);
      }
    } catch (error) {
      signal?.throwIfAborted();
      if (this.#closed && !this.#finished) {
        return; // close() was called while a read was pending: the call ended as cancelled
      }
      throw ToolwireError.from(error);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.close();
    }
  }

  async #handle(response: ChatResponse, responses: AsyncIterator<ChatResponse>): Promise<void> {
    const event = eventFromProto(response);
    if (event === undefined) {
      return; // an event kind this client does not know
    }
    if (event.type === "finish") {
      await this.#finish(responses);
    }
    this.#ready.push(event);
    if (event.type === "toolRequest") {
      this.#dispatch(event);
    }
  }

  /** Starts the tool, or leaves the request to the caller when the tool has no `run`. */
  #dispatch(request: ToolRequestEvent): void {
    const { toolCallId, name, traceContext } = request;
    const run = this.#tools[name]?.run;
    if (run === undefined) {
      this.#awaitingCaller.add(toolCallId);
      return;
    }
    this.#answered.add(toolCallId);
    const context = { signal: this.#toolsController.signal, toolCallId, traceContext };
    void runTool(name, run, request.arguments, context).then((outcome) => {
      if (this.#finished || this.#closed) {
        return; // the chat ended first: nobody awaits this result
      }
      this.#sendResult(toolCallId, outcome);
      this.#ready.push({ type: "toolResultSent", toolCallId, name, ...outcome });
      this.#wake?.();
    });
  }

  #sendResult(toolCallId: string, { content, isError }: ToolOutcome): void {
    this.#requests.push(create(ChatRequestSchema, { kind: { case: "toolResult", value: { toolCallId, content, isError } } }));
  }

  /** After `finish`: aborts tools still running, half-closes, reads to the end (and its status). */
  async #finish(responses: AsyncIterator<ChatResponse>): Promise<void> {
    this.#finished = true;
    this.#toolsController.abort();
    this.#requests.close();
    while ((await responses.next()).done !== true) {
      // An event after finish: nothing to do with it.
    }
  }
}

/** The request stream: an async iterable that items are pushed into until it is closed. */
class RequestQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #closed = false;
  #wake: (() => void) | undefined;

  push(item: T): void {
    if (this.#closed) {
      throw new Error("the chat's request stream is already closed");
    }
    this.#items.push(item);
    this.#wake?.();
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    while (true) {
      const item = this.#items.shift();
      if (item !== undefined) {
        yield item;
      } else if (this.#closed) {
        return;
      } else {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
      }
    }
  }
}

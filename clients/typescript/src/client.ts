/**
 * `Client`: opens chats on a toolwire server and runs their tools in this process.
 *
 * @module
 */
import { type Client as ConnectClient, createClient as createConnectClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { Connection } from "./connection.js";

import { Code, ToolwireError } from "./errors.js";
import type { ChatEvent, FinishEvent } from "./events.js";
import { ChatService } from "./gen/toolwire/v1/chat_pb.js";
import { type ChatOptions, startFromOptions } from "./options.js";
import { type ChatCall, ChatSession } from "./session.js";

/**
 * The largest message a client that makes its own transport accepts from the server: 64 MiB, as
 * in the Python and Go clients. A `finish` repeats every message the chat appended, tool results
 * included, so it can be far larger than the 4 MiB default of most gRPC clients.
 */
export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024;

/** How the client reaches the server. */
export interface ClientOptions {
  /**
   * A Connect transport to use instead of plaintext gRPC to `target` (e.g. one with TLS or
   * interceptors). The client does not close it. Its own `readMaxBytes` applies (Connect's
   * default is ~4 GiB); `maxReceiveMessageBytes` cannot be given with it.
   */
  transport?: Transport;
  /**
   * The largest message accepted from the server (the transport's `readMaxBytes`); unset:
   * `DEFAULT_MAX_RECEIVE_MESSAGE_BYTES` (64 MiB). A message over it ends the chat with a
   * `ToolwireError` RESOURCE_EXHAUSTED.
   */
  maxReceiveMessageBytes?: number;
}

/** A model the server can serve. */
export interface ModelInfo {
  /** The id to pass as `model`, as `provider/model-name`. */
  id: string;
  /** The provider part of the id. */
  provider: string;
  /** A short description for people. */
  description: string;
}

/**
 * A connection to a toolwire server at `target` (`host:port`), over plaintext gRPC (HTTP/2).
 * The connection opens on first use; `close()` ends it.
 */
export class Client {
  readonly #service: ConnectClient<typeof ChatService>;
  readonly #connection: Connection | undefined;
  #closed = false;

  /** Connects to `target` (default 127.0.0.1:50051, where `make run` listens). */
  constructor(target = "127.0.0.1:50051", options: ClientOptions = {}) {
    let transport = options.transport;
    if (transport === undefined) {
      const baseUrl = `http://${target}`;
      this.#connection = new Connection(baseUrl);
      const readMaxBytes = options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_MESSAGE_BYTES;
      transport = createGrpcTransport({ baseUrl, sessionManager: this.#connection, readMaxBytes });
    } else if (options.maxReceiveMessageBytes !== undefined) {
      throw new TypeError(
        "maxReceiveMessageBytes applies to the transport the client makes; for a transport passed in, " +
          "set readMaxBytes when you create it",
      );
    }
    this.#service = createConnectClient(ChatService, transport);
  }

  /**
   * Closes the connection the client opened (not a `transport` passed in) once the calls in
   * flight have ended; later calls throw an Error. Idempotent.
   */
  close(): void {
    this.#closed = true;
    this.#connection?.close();
  }

  /** The models the server can serve, sorted by id. Rejects with `ToolwireError`, or `signal.reason`. */
  async listModels(options: { signal?: AbortSignal } = {}): Promise<ModelInfo[]> {
    this.#checkOpen();
    try {
      const response = await this.#service.listModels({}, { signal: options.signal });
      return response.models.map(({ id, provider, description }) => ({ id, provider, description }));
    } catch (error) {
      options.signal?.throwIfAborted();
      throw ToolwireError.from(error);
    }
  }

  /**
   * Streams one chat's events, running every tool call with the tool's `run`.
   *
   * The first event is `started`, the last `finish`. Each `toolRequest` is yielded, then the tool
   * runs concurrently and a `toolResultSent` follows once its result is sent. Leaving the
   * `for await` loop early cancels the chat. Rejects with `ToolwireError` for a non-OK status,
   * with `signal.reason` when `signal` aborts (a DOMException named "AbortError" unless
   * `abort(reason)` gave one), and with an Error when the model calls a tool without `run`
   * (answer those with `chatSession`). Throws a TypeError at once for invalid options.
   */
  chat(options: ChatOptions): AsyncIterable<ChatEvent> {
    const session = this.chatSession(options);
    return automaticOnly(session);
  }

  /** Runs a whole chat like `chat()` (same options and errors) and resolves to its `finish` event. */
  async run(options: ChatOptions): Promise<FinishEvent> {
    for await (const event of this.chat(options)) {
      if (event.type === "finish") {
        return event;
      }
    }
    throw new ToolwireError(Code.Internal, "the chat ended without a finish event");
  }

  /**
   * A chat whose tool calls the caller may answer: iterate it, and answer each `toolRequest` for
   * a tool without `run` with `session.sendResult(...)`. Tools with `run` are still run
   * automatically. The options and errors are those of `chat()`.
   */
  chatSession(options: ChatOptions): ChatSession {
    this.#checkOpen();
    const start = startFromOptions(options);
    const call: ChatCall = (requests, signal) => this.#service.chat(requests, { signal });
    return new ChatSession(call, start, options.tools ?? {}, options.signal);
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new Error("this Client is closed; create a new one");
    }
  }
}

/** Connects to a toolwire server at `target` (`host:port`); the same as `new Client(target, options)`. */
export function createClient(target?: string, options?: ClientOptions): Client {
  return new Client(target, options);
}

async function* automaticOnly(session: ChatSession): AsyncGenerator<ChatEvent, void, undefined> {
  for await (const event of session) {
    if (event.type === "toolRequest" && !session.runsAutomatically(event.name)) {
      throw new Error(
        `the model called tool ${JSON.stringify(event.name)}, which has no run function: chat() and run() only run ` +
          "tools that have one; use client.chatSession() and session.sendResult() to answer it yourself",
      );
    }
    yield event;
  }
}

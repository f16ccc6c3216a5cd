/**
 * The HTTP/2 connection of a `Client`, closed gracefully: Connect's `Http2SessionManager` only
 * offers `abort()`, which resets the connection (the server logs a CANCEL); this closes it with
 * a GOAWAY that lets calls in flight finish.
 *
 * @module
 */
import type { ClientHttp2Session, ClientHttp2Stream } from "node:http2";

import { type GrpcTransportOptions, Http2SessionManager } from "@connectrpc/connect-node";

type SessionManager = NonNullable<GrpcTransportOptions["sessionManager"]>;

/** A session manager that remembers its HTTP/2 sessions so that `close()` can close them. */
export class Connection implements SessionManager {
  readonly #manager: Http2SessionManager;
  readonly #sessions = new Set<ClientHttp2Session>();

  /** Connects (on first request) to `baseUrl`, e.g. `http://127.0.0.1:50051`. */
  constructor(baseUrl: string) {
    this.#manager = new Http2SessionManager(baseUrl);
  }

  /** The host this connection goes to. */
  get authority(): string {
    return this.#manager.authority;
  }

  /** Issues a request on the current session, remembering the session. */
  async request(...args: Parameters<SessionManager["request"]>): Promise<ClientHttp2Stream> {
    const stream = await this.#manager.request(...args);
    const session = stream.session as ClientHttp2Session | undefined;
    if (session !== undefined && !this.#sessions.has(session)) {
      this.#sessions.add(session);
      session.once("close", () => this.#sessions.delete(session));
    }
    return stream;
  }

  /** Passes on that a response byte was read (the manager's keepalive bookkeeping). */
  notifyResponseByteRead(stream: ClientHttp2Stream): void {
    this.#manager.notifyResponseByteRead(stream);
  }

  /** Closes every session gracefully: no new streams; streams in flight finish first. */
  close(): void {
    for (const session of this.#sessions) {
      session.close();
    }
  }
}

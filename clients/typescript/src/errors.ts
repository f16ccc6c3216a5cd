/**
 * The error a toolwire call rejects with when it ends with a non-OK gRPC status.
 *
 * @module
 */
import { Code, ConnectError } from "@connectrpc/connect";

export { Code };

/**
 * A toolwire call ended with a non-OK gRPC status.
 *
 * `code` is the gRPC status code number (e.g. 14, also `Code.Unavailable`), `codeName` its
 * gRPC name ("UNAVAILABLE") and `details` the server's message, which says what went wrong and
 * usually how to fix it. The error's `message` is `${codeName}: ${details}`.
 */
export class ToolwireError extends Error {
  override readonly name = "ToolwireError";
  /** The gRPC status code number, e.g. 14 for UNAVAILABLE; compare with `Code.Unavailable`. */
  readonly code: Code;
  /** The gRPC name of the status code, e.g. "UNAVAILABLE" or "NOT_FOUND". */
  readonly codeName: string;
  /** The server's message (without the code name). */
  readonly details: string;

  /** Creates the error for status `code` with the server's message `details`. */
  constructor(code: Code, details: string, options?: { cause?: unknown }) {
    const codeName = codeNameOf(code);
    super(`${codeName}: ${details}`, options);
    this.code = code;
    this.codeName = codeName;
    this.details = details;
  }

  /** Converts a Connect error (any thrown value becomes UNKNOWN) to a ToolwireError. */
  static from(error: unknown): ToolwireError {
    if (error instanceof ToolwireError) {
      return error;
    }
    const connectError = ConnectError.from(error);
    return new ToolwireError(connectError.code, connectError.rawMessage, { cause: error });
  }
}

/** The gRPC name of a status code: `Code.DeadlineExceeded` (4) is "DEADLINE_EXCEEDED". */
export function codeNameOf(code: Code): string {
  if (code === Code.Canceled) {
    return "CANCELLED"; // gRPC spells it with two Ls, Connect's enum with one.
  }
  const name: string | undefined = Code[code];
  if (name === undefined) {
    return `CODE_${code}`;
  }
  return name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

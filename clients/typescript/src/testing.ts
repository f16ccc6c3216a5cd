/**
 * Starts a real `toolwire serve` process for tests and examples (`@toolwire/client/testing`).
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const PREFIX = "toolwire listening on ";
const START_TIMEOUT_MS = 30_000;

/** A running server process. */
export interface TestServer {
  /** Where it listens, `127.0.0.1:PORT`. */
  readonly target: string;
  /** Stops it with SIGTERM; rejects unless it exits with code 0. */
  stop(): Promise<void>;
  /**
   * What it wrote to stdout after its listening line so far (e.g. the spans of
   * `OTEL_TRACES_EXPORTER=console`, written when exported: at the latest when it stops).
   */
  stdout(): string;
}

/** Where the server executable and the test scripts are. */
export interface ServerPaths {
  /** The `toolwire` executable. */
  bin: string;
  /** The directory of scripts served as `scripted/<name>`. */
  scripts: string;
}

/**
 * $TOOLWIRE_BIN and $TOOLWIRE_SCRIPTS (the Makefile exports both), else the repository's
 * `.venv/bin/toolwire` and `tests/scripts`, found from `from` (this package's folder) upwards.
 *
 * @throws Error saying to run `make setup` when there is no server executable.
 */
export function serverPaths(
  env: NodeJS.ProcessEnv = process.env,
  from: string = dirname(fileURLToPath(import.meta.url)),
): ServerPaths {
  if (env.TOOLWIRE_BIN) {
    return { bin: env.TOOLWIRE_BIN, scripts: env.TOOLWIRE_SCRIPTS ?? "" };
  }
  for (let folder = from; ; folder = dirname(folder)) {
    const bin = join(folder, ".venv", "bin", "toolwire");
    if (existsSync(bin)) {
      return { bin, scripts: env.TOOLWIRE_SCRIPTS ?? join(folder, "tests", "scripts") };
    }
    if (dirname(folder) === folder) {
      throw new Error(
        "no toolwire server to test against: $TOOLWIRE_BIN is unset and no .venv/bin/toolwire was found above " +
          "this package; run `make setup` in the repository root (or set TOOLWIRE_BIN)",
      );
    }
  }
}

/** How to start the server. */
export interface StartServerOptions {
  /**
   * Variables set for the server on top of this process's environment (`undefined` removes one),
   * e.g. `{ OTEL_TRACES_EXPORTER: "console" }` to make it trace.
   */
  env?: Record<string, string | undefined>;
}

/**
 * Starts `toolwire serve` on a free loopback port and resolves once it listens. The server's
 * stdout is read for as long as it runs (the console exporters write there), and kept: see
 * `TestServer.stdout`.
 */
export async function startServer(paths: ServerPaths = serverPaths(), options: StartServerOptions = {}): Promise<TestServer> {
  const args = ["serve", "--listen", "127.0.0.1:0", "--log-level", "warning"];
  if (paths.scripts !== "") {
    args.push("--scripts", paths.scripts);
  }
  const env = { ...process.env, ...options.env };
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) {
      delete env[name];
    }
  }
  const child = spawn(paths.bin, args, { stdio: ["ignore", "pipe", "inherit"], env });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once("close", (code) => resolve(code)); // after stdout closed: all its lines were read
    child.once("error", reject);
  });
  const output: string[] = [];
  try {
    const target = await firstLine(child, exited, output);
    return { target, stop: () => stop(child, exited), stdout: () => output.join("\n") };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

/** Resolves with the address of the listening line; every later line goes to `output`. */
async function firstLine(child: ChildProcess, exited: Promise<number | null>, output: string[]): Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  let first: ((line: string) => void) | undefined;
  const firstSeen = new Promise<string>((resolve) => (first = resolve));
  // A 'line' listener, not the async iterator: that one stops reading when its buffer is full,
  // which would block a server that writes a lot to stdout.
  lines.on("line", (line) => {
    if (first !== undefined) {
      first(line);
      first = undefined;
    } else {
      output.push(line);
    }
  });
  lines.once("close", () => first?.(""));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the server did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
  });
  const ended = exited.then((code): never => {
    throw new Error(`the server exited with code ${code} before it listened`);
  });
  try {
    const text = await Promise.race([firstSeen, timeout, ended]);
    if (!text.startsWith(PREFIX)) {
      throw new Error(`the server did not start: its first line was ${JSON.stringify(text)}`);
    }
    return text.slice(PREFIX.length).trim();
  } finally {
    clearTimeout(timer);
    ended.catch(() => undefined);
  }
}

async function stop(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  child.kill("SIGTERM");
  const code = await exited;
  if (code !== 0) {
    throw new Error(`the server exited with code ${code} after SIGTERM (expected 0)`);
  }
}

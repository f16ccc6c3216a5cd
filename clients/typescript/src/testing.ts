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

/** Starts `toolwire serve` on a free loopback port and resolves once it listens. */
export async function startServer(paths: ServerPaths = serverPaths()): Promise<TestServer> {
  const args = ["serve", "--listen", "127.0.0.1:0", "--log-level", "warning"];
  if (paths.scripts !== "") {
    args.push("--scripts", paths.scripts);
  }
  const child = spawn(paths.bin, args, { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once("exit", (code) => resolve(code));
    child.once("error", reject);
  });
  try {
    const target = await firstLine(child, exited);
    return { target, stop: () => stop(child, exited) };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

async function firstLine(child: ChildProcess, exited: Promise<number | null>): Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the server did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
  });
  const ended = exited.then((code): never => {
    throw new Error(`the server exited with code ${code} before it listened`);
  });
  try {
    const line = await Promise.race([lines[Symbol.asyncIterator]().next(), timeout, ended]);
    const text = line.done === true ? "" : line.value;
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

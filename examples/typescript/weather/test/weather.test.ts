// Runs the example against a real server, as a function and as the command `npm start` runs.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { startServer, type TestServer } from "@toolwire/client/testing";

import { main, parseCommandLine } from "../src/weather.js";

const SCRIPT = fileURLToPath(new URL("../src/weather.js", import.meta.url));

let server: TestServer;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server.stop();
});

/** Checks the printed story of one weather chat. */
function assertPrinted(printed: string): void {
  assert.match(printed, /^Let me check the weather in Paris\.\n/);
  assert.ok(printed.includes('\n[tool] get_weather({"location":"Paris"})\n'), printed);
  assert.ok(printed.includes('[tool] -> {"location":"Paris","sky":"sunny","celsius":21}\n'), printed);
  assert.ok(printed.includes("It is sunny in Paris.\n"), printed);
  assert.match(printed, /\n\[done\] stop: 2 model calls, tools \[get_weather\], 7 chunks, \d+ ms\n$/);
}

test("the_weather_example_runs", async () => {
  let printed = "";
  const finish = await main(server.target, "scripted/weather", (text) => (printed += text));
  assert.deepEqual([finish.reason, finish.toolsCalled], ["stop", ["get_weather"]]);
  assertPrinted(printed);
});

test("the_command_prints_the_chat", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [SCRIPT, "--target", server.target], { timeout: 30_000 });
  assertPrinted(stdout);
});

test("the_command_fails_when_the_model_does", async () => {
  const run = promisify(execFile)(process.execPath, [SCRIPT, "--model", "scripted/unavailable"], {
    timeout: 30_000,
    env: { ...process.env, TOOLWIRE_TARGET: server.target },
  });
  await assert.rejects(run, (error: { code?: number; stderr?: string }) => {
    assert.equal(error.code, 1);
    assert.match(error.stderr ?? "", /UNAVAILABLE: the model is overloaded/);
    return true;
  });
});

test("command_line_defaults", () => {
  assert.deepEqual(parseCommandLine([], {}), { target: "127.0.0.1:50051", model: "scripted/weather" });
  assert.deepEqual(parseCommandLine([], { TOOLWIRE_TARGET: "127.0.0.1:9" }).target, "127.0.0.1:9");
  assert.deepEqual(parseCommandLine(["--target", "h:1", "--model", "scripted/echo"], { TOOLWIRE_TARGET: "x" }), {
    target: "h:1",
    model: "scripted/echo",
  });
});

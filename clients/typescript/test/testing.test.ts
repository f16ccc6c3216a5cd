// The test-server helper: where it finds the server, and that it says what to do when it cannot.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "node:test";

import { serverPaths, startServer } from "../src/testing.js";

test("server_paths_from_the_environment", () => {
  assert.deepEqual(serverPaths({ TOOLWIRE_BIN: "/x/toolwire", TOOLWIRE_SCRIPTS: "/x/scripts" }), { bin: "/x/toolwire", scripts: "/x/scripts" });
});

test("server_paths_fall_back_to_the_repository_venv", () => {
  const paths = serverPaths({});
  assert.match(paths.bin, /\.venv\/bin\/toolwire$/);
  assert.ok(existsSync(paths.scripts), paths.scripts);
});

test("no_server_says_to_run_make_setup", async () => {
  assert.throws(() => serverPaths({}, tmpdir()), /run `make setup`/);
  await assert.rejects(startServer({ bin: "/nonexistent/toolwire", scripts: "" }), /ENOENT/);
});

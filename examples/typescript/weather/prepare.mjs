// Makes `npm start` and `npm test` work on a fresh clone: installs the client's and this
// example's dependencies when they are missing or older than their lockfile (the same stamp
// file the Makefile uses), then builds the client, which this example links to.
import { execFileSync } from "node:child_process";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const client = join(here, "..", "..", "..", "clients", "typescript");

function npm(folder, ...args) {
  execFileSync("npm", args, { cwd: folder, stdio: ["ignore", "inherit", "inherit"] });
}

function installIfStale(folder) {
  const stamp = join(folder, "node_modules", ".installed");
  const changed = Math.max(...["package.json", "package-lock.json"].map((name) => statSync(join(folder, name)).mtimeMs));
  if (!existsSync(stamp) || statSync(stamp).mtimeMs < changed) {
    npm(folder, "ci", "--no-audit", "--no-fund", "--loglevel=error");
    writeFileSync(stamp, "");
  }
}

installIfStale(client);
npm(client, "run", "--silent", "build");
installIfStale(here);

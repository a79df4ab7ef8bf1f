#!/usr/bin/env node
// The agl command. It runs on the project's own Node 24 (the `node` npm package): npm scripts and npx
// put it first on PATH; when started some other way on an older Node, re-run under that one.
import { spawnSync } from "node:child_process";
import module from "node:module";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  const bundled = fileURLToPath(new URL("../node_modules/node/bin/node", import.meta.url));
  if (!existsSync(bundled)) {
    process.stderr.write(`agl needs Node.js 24 or newer (this is ${process.version}); run the setup command (npm run setup) first.\n`);
    process.exit(1);
  }
  const result = spawnSync(bundled, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
  process.exit(result.status ?? 1);
}

// V8's compiled code (and Node's stripped TypeScript) for every module, kept between commands: loading
// agl's modules then costs about a third less CPU. A folder that cannot be written only goes without it.
module.enableCompileCache(fileURLToPath(new URL("../.agl/cache/node", import.meta.url)));
const { main } = await import("../cli/main.ts");
const code = await main(process.argv);
process.exitCode = code;
// A library handle left open (a pool, a connection) must not keep a finished command alive.
setTimeout(() => process.exit(code), 3_000).unref();

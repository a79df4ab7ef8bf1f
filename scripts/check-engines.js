// Runs after `npm install` / `npm ci` (the project's postinstall). npm checks each package's `engines`
// against the Node.js that runs npm, usually the machine's own and older than the Node 24 this project
// installs and runs on (the `node` package): its EBADENGINE warnings are then about the wrong Node.
// This checks the same ranges against the right one: one line when all is well, the culprits when not.
// Plain JavaScript: if the project's Node failed to install, the machine's older one runs this.
import { readFileSync } from "node:fs";
import semver from "semver";

const read = (path) => JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8"));
const project = read("../package.json");
// npm's record of what it just installed.
const installed = read("../node_modules/.package-lock.json").packages;
const ranges = [
  ["this project", project.engines?.node],
  ...Object.entries(installed).map(([path, entry]) => [path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length), entry.engines?.node]),
].filter(([, range]) => typeof range === "string");

// npm puts node_modules/.bin first on PATH, so `node` here is the project's own.
const runtime = process.version;
const npmNode = /\bnode\/(v\S+)/.exec(process.env.npm_config_user_agent ?? "")?.[1];
const accepts = (version) => ([, range]) => semver.satisfies(version, range, { includePrerelease: true });

const refusing = ranges.filter((entry) => !accepts(runtime)(entry));
if (refusing.length > 0) {
  const list = refusing.map(([name, range]) => `  ${name} wants node ${range}`).join("\n");
  process.stdout.write(`install: WARNING: ${refusing.length} package(s) do not accept the Node.js the project runs on (${runtime}):\n${list}\n`);
} else if (npmNode && !ranges.every(accepts(npmNode))) {
  process.stdout.write(`install: the EBADENGINE warnings above are about the machine's Node ${npmNode}; the project runs on its own Node ${runtime}, which every package accepts.\n`);
}

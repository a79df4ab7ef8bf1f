import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { ConfigError, loadProject } from "../../config/load.ts";
import { ROOT } from "../cli/support.ts";

/** What a user's config imports as "agent-training-loop"; in a temporary folder the repo's entry is imported by path. */
const API = fileURLToPath(new URL("../../index.ts", import.meta.url));

let cwd: string;
beforeEach(() => {
  cwd = mkdtempSync(join(tmpdir(), "agl-project-"));
});
afterEach(() => {
  rmSync(cwd, { recursive: true, force: true });
});

function write(name: string, text: string): string {
  const path = join(cwd, name);
  writeFileSync(path, text);
  return path;
}

/** An agent module: `body` is the options object given to defineAgent (z and the API in scope). */
function agentModule(name: string, body: string): string {
  return write(name, `import { z } from "zod";\nimport { defineAgent, groundTruth, judge } from "${API}";\nexport const agent = defineAgent(${body});\n`);
}

const GOOD_AGENT = `{
  id: "greeter",
  input: z.object({ name: z.string() }),
  output: "text",
  prompt: { instructions: "Greet the person by name." },
  scorers: [groundTruth(), { scorer: judge({ rubric: "- uses the name" }), weight: 0.5 }],
}`;

async function configErrorOf(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("agl.config.ts: the project's agents and settings", () => {
  test("a module config registers its agents, with settings below the environment's", async () => {
    agentModule("greeter.ts", GOOD_AGENT);
    write("agl.config.ts", `import { defineConfig } from "${API}";\nimport { agent } from "./greeter.ts";\nexport default defineConfig({ agents: [agent], cycle: { margin: 0.1, batchSize: 7 } });\n`);
    const config = await loadProject({ cwd, env: { AGL_CYCLE_BATCH_SIZE: "9" } });
    expect(config.agents.list().map((agent) => agent.id)).toEqual(["greeter"]);
    const greeter = config.agents.get("greeter");
    expect(greeter).toMatchObject({ outputKind: "text", outputSchema: null, prompt: { resource: "greeter", examplesComponent: "examples" } });
    // Demonstrations need a place: the examples component was added and placed at the end of the instructions.
    expect(greeter.prompt.seed.components).toEqual({ instructions: "Greet the person by name.\n\n{{examples}}", examples: "" });
    expect(greeter.scorers.map((scorer) => [scorer.id, scorer.weight])).toEqual([["ground-truth", 1], ["judge", 0.5]]);
    expect(greeter.message({ name: "Ada" })).toBe("Ada");
    expect(config.cycle.margin).toBe(0.1);
    expect(config.cycle.batchSize).toBe(9);
    expect(config.file).toBe(join(cwd, "agl.config.ts"));
  });

  test(".js and .mjs configs load too, and --config names any file", async () => {
    agentModule("greeter.ts", GOOD_AGENT);
    write("agl.config.mjs", `import { agent } from "./greeter.ts";\nexport default { agents: [agent] };\n`);
    expect((await loadProject({ cwd, env: {} })).agents.list()).toHaveLength(1);
    write("other.js", `export default { agents: [], model: { provider: "fake" } };\n`);
    const other = await loadProject({ cwd, env: {}, file: "other.js" });
    expect(other.agents.list()).toEqual([]);
    expect(other.model.provider).toBe("fake");
  });

  test("without a config file the bundled examples are registered", async () => {
    const config = await loadProject({ cwd, env: {} });
    expect(config.agents.find("post-analyzer")).toBeDefined();
  });

  test("the example project's config loads from the repo, its own Mastra agent and scorer included", async () => {
    const config = await loadProject({ cwd: join(ROOT, "examples/your-agent"), env: { AGL_MODEL: "fake" } });
    const triage = config.agents.get("ticket-triage");
    expect(triage.runtime.kind).toBe("mastra");
    expect(Object.keys(triage.labels)).toEqual(["queue", "priority"]);
    expect(triage.scorers.map((scorer) => [scorer.id, scorer.weight])).toEqual([["ground-truth", 3], ["no-missed-outage", 1]]);
  });
});

describe("a config or agent that cannot work stops at load, naming the file, the agent and what is wrong", () => {
  test("a module that fails to import", async () => {
    const file = write("agl.config.ts", `import { agent } from "./missing.ts";\nexport default { agents: [agent] };\n`);
    expect(await configErrorOf(() => loadProject({ cwd, env: {} }))).toMatch(new RegExp(`^Could not load ${file}: .*missing\\.ts`));
  });

  test("two agents with one id", async () => {
    agentModule("greeter.ts", GOOD_AGENT);
    const file = write("agl.config.ts", `import { agent } from "./greeter.ts";\nexport default { agents: [agent, agent] };\n`);
    expect(await configErrorOf(() => loadProject({ cwd, env: {} }))).toBe(`Config file ${file}: two agents have the id "greeter".`);
  });

  test("an output schema that cannot become JSON Schema", async () => {
    const module = agentModule("dated.ts", `{ id: "dated", input: z.object({ a: z.string() }), output: z.object({ when: z.date() }), prompt: { instructions: "When?" } }`);
    write("agl.config.ts", `import { agent } from "./dated.ts";\nexport default { agents: [agent] };\n`);
    const message = await configErrorOf(() => loadProject({ cwd, env: {} }));
    expect(message).toContain(`agent "dated" (defined at ${module}:3)`);
    expect(message).toContain("the output schema cannot become JSON Schema");
  });

  test("a seed prompt missing a required placeholder, or using one that names no component", async () => {
    // Each case its own files: a module, once imported, stays cached for the process.
    agentModule("lost.ts", `{ id: "lost", input: z.object({ a: z.string() }), output: "text", prompt: { components: { instructions: "Hi {{tone}}", tone: "warm", rules: "x" }, placeholders: ["tone", "rules"] } }`);
    write("missing.mjs", `import { agent } from "./lost.ts";\nexport default { agents: [agent] };\n`);
    expect(await configErrorOf(() => loadProject({ cwd, env: {}, file: "missing.mjs" }))).toMatch(/agent "lost" .*missing the required placeholder \{\{rules\}\}/);
    agentModule("dangling.ts", `{ id: "dangling", input: z.object({ a: z.string() }), output: "text", prompt: { instructions: "Hi {{tone}}" } }`);
    write("dangling.mjs", `import { agent } from "./dangling.ts";\nexport default { agents: [agent] };\n`);
    expect(await configErrorOf(() => loadProject({ cwd, env: {}, file: "dangling.mjs" }))).toMatch(/agent "dangling" .*uses \{\{tone\}\} but the prompt has no such component/);
  });

  test("a scorer id that does not exist, in the agent or in cycle.scorers", async () => {
    agentModule("scored.ts", `{ id: "scored", input: z.object({ a: z.string() }), output: "text", prompt: { instructions: "Hi" }, scorers: ["ground-truth", "vibes"] }`);
    write("agl.config.ts", `import { agent } from "./scored.ts";\nexport default { agents: [agent] };\n`);
    expect(await configErrorOf(() => loadProject({ cwd, env: {} }))).toMatch(/agent "scored" .*scorers\[1\]: unknown scorer id "vibes"/);
    agentModule("greeter.ts", GOOD_AGENT);
    write("greeter.mjs", `import { agent } from "./greeter.ts";\nexport default { agents: [agent] };\n`);
    expect(await configErrorOf(() => loadProject({ cwd, env: { AGL_CYCLE_SCORERS: '["vibes"]' }, file: "greeter.mjs" }))).toMatch(/"vibes" is neither built in .* nor a scorer of agent greeter/);
  });

  test("label sets that do not match the output, and components an optimizer may not know", async () => {
    agentModule(
      "labelled.ts",
      `{ id: "labelled", input: z.object({ a: z.string() }), output: z.object({ mood: z.enum(["up", "down"]), note: z.string() }),
         prompt: { components: { instructions: "{{moods}}", moods: "- up: happy" }, labels: { mood: "moods", note: "moods" }, editable: ["tone"] } }`,
    );
    write("agl.config.ts", `import { agent } from "./labelled.ts";\nexport default { agents: [agent] };\n`);
    const message = await configErrorOf(() => loadProject({ cwd, env: {} }));
    expect(message).toContain(`component "moods" needs exactly one "- <label>: <description>" line for "down"`);
    expect(message).toContain(`prompt.labels names "note", which is not a string enum of the output`);
    expect(message).toContain(`prompt.editable names "tone"`);
  });

  test("a default export that is not a config, agents that are not defineAgent's, two config files", async () => {
    const file = write("agl.config.ts", `export const agents = [];\n`);
    expect(await configErrorOf(() => loadProject({ cwd, env: {} }))).toBe(`Config file ${file} must export its configuration as the default export: export default defineConfig({ agents: [...] }).`);
    const raw = write("raw.mjs", `export default { agents: [{ id: "raw" }] };\n`);
    expect(await configErrorOf(() => loadProject({ cwd, env: {}, file: "raw.mjs" }))).toBe(`Config file ${raw}: agents[0] is not an agent made by defineAgent().`);
    write("agl.config.json", "{}");
    expect(await configErrorOf(() => loadProject({ cwd, env: {} }))).toBe(`Found agl.config.ts and agl.config.json in ${cwd}: keep one config file (or pass --config FILE).`);
  });

  test("an unknown setting in a module config is reported like one in agl.config.json", async () => {
    const file = write("agl.config.mjs", `export default { agents: [], cycle: { margn: 0.1 } };\n`);
    expect(await configErrorOf(() => loadProject({ cwd, env: {} }))).toContain(`cycle.margn = 0.1 (from config file ${file}): unknown setting`);
  });
});

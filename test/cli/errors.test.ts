import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client, Connection } from "@temporalio/client";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { agl, type AglResult, cleanEnv, createPrivateDatabase, embeddedEnv, json, type PrivateDatabase, removeDir, scaledEnv, tempDir, writeMiniDataset } from "./support.ts";

const USAGE_HINT = "(run with --help for usage)";

/** Exit 2, nothing on stdout, one `error:` line first on stderr. */
function expectInvalid(result: AglResult, message: string | RegExp): void {
  expect(result.exitCode, result.stderr).toBe(2);
  expect(result.stdout).toBe("");
  expect(result.stderr).toMatch(/^error: /);
  if (typeof message === "string") expect(result.stderr).toContain(message);
  else expect(result.stderr).toMatch(message);
}

describe("unknown agent, data set or cycle (scaled mode)", () => {
  let db: PrivateDatabase;
  let env: Record<string, string>;
  let temporal: Connection;

  beforeAll(async () => {
    db = await createPrivateDatabase();
    env = scaledEnv(db);
    temporal = await Connection.connect({ address: inject("temporalAddress") });
  });
  afterAll(async () => {
    await temporal?.close();
    await db?.close();
    removeDir(env?.AGL_DATA_DIR);
  });

  /** What the commands must not have written: cycle rows, prompt versions, data sets, workflows. */
  async function expectNothingStored(): Promise<void> {
    expect(await db.count("cycles")).toBe(0);
    expect(await db.count("resource_versions")).toBe(0);
    expect(await db.count("resource_labels")).toBe(0);
    expect(await db.count("datasets")).toBe(0);
    expect(await db.count("agent_leases")).toBe(0);
    const started: string[] = [];
    for await (const workflow of new Client({ connection: temporal }).workflow.list({ query: `TaskQueue = "${env.AGL_TASK_QUEUE}"` })) started.push(workflow.workflowId);
    expect(started).toEqual([]);
  }

  test("cycle start with an unknown agent exits 2 listing the known agents, and starts nothing", async () => {
    const result = await agl(["cycle", "start", "--agent", "nope", "--dataset", "posts", "--wait", "--json"], { env });
    expectInvalid(result, 'error: Unknown agent "nope". Known agents: post-analyzer, funding-extractor, support-reply.');
    // The one line is all: no "No worker polls" hint, no progress.
    expect(result.stderr).toBe('error: Unknown agent "nope". Known agents: post-analyzer, funding-extractor, support-reply.\n');
    await expectNothingStored();
  });

  test("cycle start with an unknown data set exits 2 naming the import command, and starts nothing", async () => {
    const result = await agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "nope", "--wait"], { env });
    expectInvalid(result, 'error: Dataset "nope" does not exist. Import one with: agl dataset import FILE --name nope');
    await expectNothingStored();
  });

  test("unknown cycle ids and agents in the read commands exit 2", async () => {
    const [status, statusJson, cancel, promptsList, promptsShow, noProduction] = await Promise.all([
      agl(["cycle", "status", "cy-unknown"], { env }),
      agl(["cycle", "status", "cy-unknown", "--json"], { env }),
      agl(["cycle", "cancel", "cy-unknown"], { env }),
      agl(["prompts", "list", "nope"], { env }),
      agl(["prompts", "show", "nope", "--json"], { env }),
      agl(["prompts", "show", "post-analyzer"], { env }),
    ]);
    expect(status.stderr).toBe('error: Cycle "cy-unknown" does not exist. List cycles with: agl cycle list\n');
    expectInvalid(status, "cy-unknown");
    expectInvalid(statusJson, 'error: Cycle "cy-unknown" does not exist.');
    expectInvalid(cancel, 'error: Cycle "cy-unknown" does not exist.');
    expectInvalid(promptsList, 'error: Unknown agent "nope". Known agents: post-analyzer, funding-extractor, support-reply.');
    expectInvalid(promptsShow, 'error: Unknown agent "nope". Known agents: post-analyzer, funding-extractor, support-reply.');
    // No cycle has published version 1 yet.
    expectInvalid(noProduction, 'error: Resource "post-analyzer" does not exist or has no labels.');
    await expectNothingStored();
  });

  test("empty lists say so: [] in JSON, a hint for humans", async () => {
    const [cycles, cyclesJson, versions, versionsJson, datasets] = await Promise.all([
      agl(["cycle", "list"], { env }),
      agl(["cycle", "list", "--json"], { env }),
      agl(["prompts", "list", "post-analyzer"], { env }),
      agl(["prompts", "list", "post-analyzer", "--json"], { env }),
      agl(["dataset", "list", "--json"], { env }),
    ]);
    for (const result of [cycles, cyclesJson, versions, versionsJson, datasets]) {
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stderr).toBe("");
    }
    expect(cycles.stdout).toBe("No cycles yet. Start one with: agl cycle start --agent post-analyzer --dataset posts --wait\n");
    expect(json(cyclesJson)).toEqual([]);
    expect(versions.stdout).toBe('No versions of "post-analyzer" yet: version 1 is published by the agent\'s first cycle.\n');
    expect(json(versionsJson)).toEqual([]);
    expect(json(datasets)).toEqual([]);
  });
});

describe("requests rejected before anything is opened (embedded mode: the data folder is never created)", () => {
  let home: string;
  let dataDir: string;
  let env: Record<string, string>;

  beforeAll(() => {
    home = tempDir("agl-cli-errors-");
    dataDir = join(home, "data");
    env = embeddedEnv(dataDir);
  });
  afterAll(() => removeDir(home));

  test("an unknown agent is rejected before PGlite or a Temporal dev server starts", async () => {
    const result = await agl(["cycle", "start", "--agent", "nope", "--dataset", "posts", "--wait"], { env, cwd: home });
    expectInvalid(result, 'error: Unknown agent "nope". Known agents: post-analyzer, funding-extractor, support-reply.');
    // No data folder: neither PGlite nor a Temporal dev server (whose SQLite lives there) was started.
    expect(existsSync(dataDir)).toBe(false);
  });

  test("a bad environment value names the setting, the value, the variable and what is allowed", async () => {
    // Each case: the fragments stderr must contain (setting, value, source, what is allowed).
    const cases: { vars: Record<string, string>; fragments: string[] }[] = [
      { vars: { AGL_CYCLE_MARGIN: "abc" }, fragments: ["cycle.margin", '"abc"', "environment variable AGL_CYCLE_MARGIN", "expected a number"] },
      { vars: { AGL_CYCLE_MARGIN: "5" }, fragments: ["cycle.margin = 5", "AGL_CYCLE_MARGIN", "<=2"] },
      { vars: { AGL_CYCLE_BATCH_SIZE: "1.5" }, fragments: ["cycle.batchSize", '"1.5"', "AGL_CYCLE_BATCH_SIZE", "expected a whole number"] },
      { vars: { DATABASE_URL: "mysql://db/agl" }, fragments: ["database.url", '"mysql://db/agl"', "DATABASE_URL", "postgres://"] },
      { vars: { TEMPORAL_ADDRESS: "localhost" }, fragments: ["temporal.address", '"localhost"', "TEMPORAL_ADDRESS", "host:port"] },
      { vars: { AGL_MODEL: "gpt" }, fragments: ["model.provider", '"gpt"', "AGL_MODEL", '"fake"'] },
      { vars: { AGL_MODEL: "openai-compatible" }, fragments: ["model.provider", "AGL_MODEL", "model.baseUrl", "OPENAI_BASE_URL"] },
    ];
    const results = await Promise.all(
      cases.map((c) => agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "posts", "--wait"], { env: { ...env, ...c.vars }, cwd: home })),
    );
    results.forEach((result, index) => {
      expectInvalid(result, /^error: Invalid configuration/);
      for (const fragment of cases[index]!.fragments) expect(result.stderr).toContain(fragment);
    });
    expect(existsSync(dataDir)).toBe(false);
  });

  test("agl.config.json in the working directory: an unknown key is named with the file", async () => {
    const project = join(home, "project");
    mkdirSync(project);
    const file = join(project, "agl.config.json");
    writeFileSync(file, JSON.stringify({ cycle: { margn: 0.1 }, telemetry: true }));
    const result = await agl(["cycle", "list"], { env, cwd: project });
    expectInvalid(result, "error: Invalid configuration:");
    // One line per unknown key, naming the key, the file and the problem (the exact wording may evolve).
    for (const key of ["cycle.margn", "telemetry"]) {
      const line = result.stderr.split("\n").find((text) => text.trim().startsWith(key));
      expect(line, `a line about ${key} in:\n${result.stderr}`).toBeDefined();
      expect(line).toContain(`config file ${file}`);
      expect(line).toContain("unknown setting");
    }

    writeFileSync(file, JSON.stringify({ cycle: { margin: "high" } }));
    const badValue = await agl(["dataset", "list"], { env, cwd: project });
    expectInvalid(badValue, /^error: Invalid configuration/);
    for (const fragment of ["cycle.margin", '"high"', `config file ${file}`, "expected number"]) expect(badValue.stderr).toContain(fragment);

    writeFileSync(file, "{ not json");
    const badJson = await agl(["prompts", "list", "post-analyzer"], { env, cwd: project });
    expectInvalid(badJson, `error: Config file ${file} is not valid JSON`);

    // --config and AGL_CONFIG name a file that must exist.
    const [missing, missingEnv] = await Promise.all([
      agl(["--config", "other.json", "cycle", "list"], { env, cwd: home }),
      agl(["cycle", "list"], { env: { ...env, AGL_CONFIG: "gone.json" }, cwd: home }),
    ]);
    expectInvalid(missing, `error: Config file ${join(home, "other.json")} does not exist (from --config).`);
    expectInvalid(missingEnv, `error: Config file ${join(home, "gone.json")} does not exist (from AGL_CONFIG).`);
    expect(existsSync(dataDir)).toBe(false);
    expect(existsSync(join(project, ".agl"))).toBe(false);
  });

  test("usage errors exit 2 with the help hint; --help exits 0", async () => {
    const usage = (args: string[]) => agl(args, { env, cwd: home });
    const [unknownCommand, unknownSub, missingOption, limitZero, limitText, missingArgument, unknownOption, bare] = await Promise.all([
      usage(["frob"]),
      usage(["cycle", "frob"]),
      usage(["cycle", "start", "--agent", "post-analyzer"]),
      usage(["cycle", "list", "--limit", "0"]),
      usage(["cycle", "list", "--limit", "ten"]),
      usage(["cycle", "status"]),
      usage(["cycle", "list", "--bogus"]),
      usage([]),
    ]);
    expectInvalid(unknownCommand, "error: unknown command 'frob'");
    expectInvalid(unknownSub, "error: unknown command 'frob'");
    expectInvalid(missingOption, "error: Give exactly one of --dataset D, --traffic WINDOW and --since TIME.");
    expectInvalid(limitZero, 'error: option \'--limit <n>\' argument \'0\' is invalid. --limit must be a positive whole number, got "0".');
    expectInvalid(limitText, '--limit must be a positive whole number, got "ten".');
    expectInvalid(missingArgument, "error: missing required argument 'id'");
    expectInvalid(unknownOption, "error: unknown option '--bogus'");
    for (const result of [unknownCommand, unknownSub, missingOption, limitZero, limitText, missingArgument, unknownOption]) {
      expect(result.stderr).toContain(USAGE_HINT);
    }
    // No command at all: the help, on stderr, as a usage error.
    expect(bare.exitCode).toBe(2);
    expect(bare.stderr).toContain("Usage: agl [options] [command]");

    const [help, cycleHelp, startHelp, helpCommand] = await Promise.all([usage(["--help"]), usage(["cycle", "--help"]), usage(["cycle", "start", "--help"]), usage(["help", "dataset"])]);
    for (const result of [help, cycleHelp, startHelp, helpCommand]) {
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stderr).toBe("");
    }
    expect(help.stdout).toContain("Usage: agl [options] [command]");
    expect(help.stdout).toMatch(/^ {2}cycle\s+start, follow and list training cycles$/m);
    for (const command of ["prompts", "dataset", "worker"]) expect(help.stdout).toMatch(new RegExp(`^ {2}${command}\\s`, "m"));
    for (const command of ["start", "status", "list", "cancel"]) expect(cycleHelp.stdout).toMatch(new RegExp(`^ {2}${command}\\b`, "m"));
    for (const option of ["--agent <agent>", "--dataset <dataset>", "--wait", "--json"]) expect(startHelp.stdout).toContain(option);
    expect(helpCommand.stdout).toContain("Usage: agl dataset [options] [command]");
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe("nothing leaks in from the outer environment", () => {
  test("a command run with only PATH and HOME uses the defaults: .agl in the working directory", async () => {
    const home = tempDir("agl-cli-defaults-");
    try {
      // A store-only command in embedded mode: it creates ./.agl with a PGlite cluster and nothing else.
      const result = await agl(["dataset", "list", "--json"], { env: cleanEnv({}), cwd: home, timeoutMs: 60_000 });
      expect(result.stderr).toBe("");
      expect(result.exitCode).toBe(0);
      expect(json(result)).toEqual([]);
      expect(existsSync(join(home, ".agl", "pglite", "PG_VERSION"))).toBe(true);
      expect(existsSync(join(home, ".agl", "temporal"))).toBe(false);
    } finally {
      removeDir(home);
    }
  });
});

describe("the agent's model, wherever the data folder is", () => {
  let db: PrivateDatabase;
  let home: string;
  beforeAll(async () => {
    db = await createPrivateDatabase();
    home = tempDir("agl-cli-model-");
  });
  afterAll(async () => {
    await db?.close();
    removeDir(home);
  });

  test("the local model is found where setup installed it, even with a brand-new data folder", { timeout: 240_000 }, async () => {
    const env = scaledEnv(db, { AGL_MODEL: "local", AGL_MODEL_THREADS: "1", AGL_DATA_DIR: join(home, "never-used-before") });
    const dataset = writeMiniDataset(home, "tiny.jsonl", 6, 3);
    expect((await agl(["dataset", "import", dataset, "--name", "tiny-local"], { env })).exitCode).toBe(0);
    const result = await agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "tiny-local", "--wait", "--json"], { env, timeoutMs: 220_000 });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(json(result)).toMatchObject({ collect: { rollouts: 6, failed: 0 } });
  });

  test("a model that cannot load fails the cycle with exit 1 and its error, before anything is collected", { timeout: 120_000 }, async () => {
    const missing = join(home, "no-such-model.gguf");
    const env = scaledEnv(db, { AGL_MODEL: "local", AGL_MODEL_PATH: missing });
    const dataset = writeMiniDataset(home, "tiny2.jsonl", 6, 3);
    expect((await agl(["dataset", "import", dataset, "--name", "tiny-missing"], { env })).exitCode).toBe(0);
    const result = await agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "tiny-missing", "--wait"], { env, timeoutMs: 100_000 });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`error: Cycle cy-post-analyzer-\\S+ failed: Agent "post-analyzer" failed before the cycle collected anything \\(model local/SmolLM2-135M-Instruct\\): The local model file ${missing} does not exist`));
    expect(await db.count("rollouts", "dataset = $1", ["tiny-missing"])).toBe(0);
  });
});

// Benchmark: how soon `agl submit FILE --wait` stores its first rollout, and how soon after its last
// it has exited. 400 tasks, the fake model at 0 ms, the embedded store and Temporal server: once with
// nothing running on the data folder (the command opens PGlite, starts the Temporal dev server and runs
// a worker itself), once with `agl up` serving the folder (the command attaches to it and agl up's
// worker runs the batches). Times come from the command's start and exit here and from the rollouts'
// `created_at` in the store (the same clock).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { sql } from "kysely";
import { readDatasetFile } from "../agents/dataset-file.ts";
import { bundledAgents, postAnalyzer } from "../agents/examples.ts";
import { loadConfig } from "../config/load.ts";
import { openRuntime } from "../runtime/runtime.ts";

const TASKS = 400;
const AGL = fileURLToPath(new URL("../bin/agl.js", import.meta.url));
const NODE = process.execPath;

export type StartupScenario = "fresh data folder" | "nothing runs" | "agl up runs";

export interface StartupRun {
  scenario: StartupScenario;
  /** From the command's start to the first rollout stored. */
  firstRolloutMs: number;
  /** From the first rollout stored to the last. */
  workMs: number;
  /** From the last rollout stored to the command's exit. */
  afterLastMs: number;
  totalMs: number;
  rollouts: number;
}

/** `runs` measured runs of each scenario, after one run that fills the caches (compile cache, workflow bundle). */
export async function benchStartup(runs: number): Promise<StartupRun[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "agl-bench-startup-"));
  const tasksFile = join(dataDir, "tasks.jsonl");
  const env = { ...inheritedEnv(), AGL_DATA_DIR: join(dataDir, "data"), AGL_MODEL: "fake", AGL_PORT: "0" };
  const config = loadConfig({ env, agents: bundledAgents });
  let up: ResultPromise | undefined;
  try {
    const posts = await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer);
    const lines = Array.from({ length: TASKS }, (_, index) => ({ ...posts[index % posts.length]!, id: `startup-${index + 1}`, split: undefined }));
    writeFileSync(tasksFile, `${lines.map((line) => JSON.stringify(line)).join("\n")}\n`);
    const submit = async (scenario: StartupScenario, again: boolean) => {
      const started = Date.now();
      const result = await execa(NODE, [AGL, "submit", tasksFile, "--agent", postAnalyzer.id, "--wait", "--json", ...(again ? ["--again"] : [])], { env, extendEnv: false, reject: false });
      if (result.exitCode !== 0) throw new Error(`agl submit failed (${scenario}): ${result.stderr}`);
      return { scenario, started, exited: Date.now(), submissionId: (JSON.parse(result.stdout) as { submissionId: string }).submissionId };
    };

    const commands = [await submit("fresh data folder", false)];
    for (let run = 0; run < runs; run++) commands.push(await submit("nothing runs", true));
    up = execa(NODE, [AGL, "up"], { env, extendEnv: false, reject: false, stderr: "pipe", stdout: "ignore" });
    await listening(up);
    for (let run = 0; run < runs; run++) commands.push(await submit("agl up runs", true));

    // Joins agl up's store to read when each rollout was stored.
    const runtime = await openRuntime(config, { store: true, command: "npm run bench -- startup" });
    try {
      const measured: StartupRun[] = [];
      for (const command of commands) {
        const { rows } = await sql<{ first: Date; last: Date; rollouts: string }>`
          SELECT min(created_at) AS first, max(created_at) AS last, count(*) AS rollouts FROM rollouts WHERE dataset = ${`submission-${command.submissionId}`}`.execute(runtime.store.db);
        const { first, last, rollouts } = rows[0]!;
        measured.push({
          scenario: command.scenario,
          firstRolloutMs: first.getTime() - command.started,
          workMs: last.getTime() - first.getTime(),
          afterLastMs: command.exited - last.getTime(),
          totalMs: command.exited - command.started,
          rollouts: Number(rollouts),
        });
      }
      return measured;
    } finally {
      await runtime.close();
    }
  } finally {
    up?.kill("SIGTERM");
    await up;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The benchmark's environment without the settings that would point the commands elsewhere. */
function inheritedEnv(): Record<string, string> {
  const { DATABASE_URL: _database, TEMPORAL_ADDRESS: _temporal, AGL_DATA_DIR: _data, ...rest } = process.env;
  return Object.fromEntries(Object.entries(rest).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

function listening(child: ResultPromise): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes("agl up: http")) resolve();
    });
    void child.then((result) => reject(new Error(`agl up exited: ${result.stderr}`)));
  });
}

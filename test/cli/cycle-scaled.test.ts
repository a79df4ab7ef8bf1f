import { Client, Connection } from "@temporalio/client";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { agl, createPrivateDatabase, json, type PrivateDatabase, removeDir, scaledEnv, uniqueQueue } from "./support.ts";

const CYCLE_FIELDS = ["id", "agent", "dataset", "trigger", "phase", "outcome", "outcomeDetail", "incumbentVersion", "deployedVersion", "startedAt", "finishedAt", "result"];
const VERSION_FIELDS = ["name", "version", "labels", "parentVersion", "createdBy", "createdAt", "note", "metrics", "content"];
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe("agl cycle start --wait in scaled mode (Temporal dev server + PostgreSQL, fake model)", () => {
  let db: PrivateDatabase;
  let env: Record<string, string>;
  /**
   * The cycles later tests build on, each run once by whichever test needs it first, so any one test
   * passes alone: the first cycle (`--json`) and a second one on a task queue of its own (without).
   */
  let firstRun: Promise<{ start: Awaited<ReturnType<typeof agl>>; first: any }> | undefined;
  const firstCycle = () =>
    (firstRun ??= agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "posts", "--wait", "--json"], { env, timeoutMs: 90_000 }).then((start) => ({
      start,
      first: start.exitCode === 0 ? json(start) : undefined,
    })));
  let secondRun: Promise<{ run: Awaited<ReturnType<typeof agl>>; queueEnv: Record<string, string> }> | undefined;
  const secondCycle = () =>
    (secondRun ??= firstCycle().then(async () => {
      // A task queue of its own: see the stale-poller test below for why reusing the first one hangs.
      const queueEnv = { ...env, AGL_TASK_QUEUE: uniqueQueue() };
      return { run: await agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "posts", "--wait"], { env: queueEnv, timeoutMs: 90_000 }), queueEnv };
    }));

  beforeAll(async () => {
    db = await createPrivateDatabase();
    env = scaledEnv(db);
  });
  afterAll(async () => {
    await db?.close();
    removeDir(env?.AGL_DATA_DIR);
  });

  test("a full cycle prints its summary as JSON, and status, list and prompts show what it stored", async () => {
    const { start, first } = await firstCycle();
    expect(start.stderr).not.toContain("error:");
    expect(start.exitCode).toBe(0);
    // The fake model on the bundled posts deploys the same candidate on every run.
    expect(first).toMatchObject({ outcome: "deployed", deployedVersion: 2, agent: "post-analyzer", incumbentVersion: 1, collect: { rollouts: 180, failed: 0 } });
    expect(first.cycleId).toMatch(/^cy-post-analyzer-\d{8}-\d{6}-[0-9a-f]{4}$/);
    expect(first.baseline).toMatchObject({ contender: "incumbent", rollouts: 60, failed: 0, meanReward: expect.any(Number) });
    expect(first.best).toMatchObject({ contender: expect.stringMatching(/^r\d+c\d+$/), rollouts: 60, failed: 0, meanReward: expect.any(Number) });
    expect(first.best.meanReward).toBeGreaterThanOrEqual(first.baseline.meanReward + 0.02);
    // --json keeps stdout to the one JSON document; no progress lines are printed either.
    expect(start.stderr.trim()).toBe("");

    // What is stored, read straight from the database.
    expect(await db.count("cycles")).toBe(1);
    expect(await db.count("datasets", "name = 'posts'")).toBe(1);
    expect(await db.count("tasks", "dataset = 'posts'")).toBe(300);
    expect(await db.count("rollouts", "cycle_id = $1 AND phase = 'collect'", [first.cycleId])).toBe(180);
    expect(await db.count("resource_versions", "name = 'post-analyzer'")).toBe(2);
    expect(await db.count("agent_leases")).toBe(0);

    const status = await agl(["cycle", "status", first.cycleId, "--json"], { env });
    expect(status.exitCode).toBe(0);
    const cycle = json(status);
    expect(Object.keys(cycle).sort()).toEqual([...CYCLE_FIELDS].sort());
    expect(cycle).toMatchObject({
      id: first.cycleId,
      agent: "post-analyzer",
      dataset: "posts",
      trigger: "manual",
      phase: "done",
      outcome: first.outcome,
      outcomeDetail: first.detail,
      incumbentVersion: 1,
      deployedVersion: first.deployedVersion,
    });
    expect(cycle.startedAt).toMatch(ISO_TIME);
    expect(cycle.finishedAt).toMatch(ISO_TIME);
    expect(Date.parse(cycle.finishedAt)).toBeGreaterThanOrEqual(Date.parse(cycle.startedAt));
    expect(cycle.result).toEqual(first);

    const list = await agl(["cycle", "list", "--json"], { env });
    expect(list.exitCode).toBe(0);
    expect(json(list)).toEqual([cycle]);

    const versions = await agl(["prompts", "list", "post-analyzer", "--json"], { env });
    expect(versions.exitCode).toBe(0);
    const listed = json<any[]>(versions);
    expect(listed.map((v) => v.version)).toEqual([1, 2]);
    for (const version of listed) {
      expect(Object.keys(version).sort()).toEqual([...VERSION_FIELDS].sort());
      expect(version.createdAt).toMatch(ISO_TIME);
      expect(version.content.engine).toBe("placeholders");
    }
    expect(listed[0]).toMatchObject({ name: "post-analyzer", version: 1, parentVersion: null, createdBy: "agent:post-analyzer", metrics: {} });
    expect(listed[0].labels).toEqual([]);
    expect(listed[1]).toMatchObject({
      version: 2,
      labels: ["production"],
      parentVersion: 1,
      createdBy: `cycle:${first.cycleId}`,
      metrics: { validation: first.best, baseline: first.baseline, margin: 0, cycleId: first.cycleId },
    });

    const show = await agl(["prompts", "show", "post-analyzer", "--json"], { env });
    expect(show.exitCode).toBe(0);
    const shown = json(show);
    expect(shown).toEqual({ ...listed[1], rendered: expect.any(String) });
    expect(shown.labels).toContain("production");
    // The template is rendered: placeholders replaced by the components they name.
    expect(shown.rendered).not.toMatch(/\{\{\w+\}\}/);
    expect(shown.rendered).toContain("You read one short social media post and classify it.");
    expect(shown.rendered).toContain(shown.content.components.categories);

    const byVersion = await agl(["prompts", "show", "post-analyzer", "--version", "1", "--json"], { env });
    expect(byVersion.exitCode).toBe(0);
    expect(json(byVersion)).toMatchObject({ version: 1, createdBy: "agent:post-analyzer" });
    const noVersion = await agl(["prompts", "show", "post-analyzer", "--version", "9"], { env });
    expect(noVersion.exitCode).toBe(2);
    expect(noVersion.stderr).toMatch(/^error: Resource "post-analyzer" has no version 9/m);
    expect(noVersion.stdout).toBe("");
  });

  test("the human forms print tables with headers", async () => {
    const { first } = await firstCycle();
    const [list, versions, status, show, datasets] = await Promise.all([
      agl(["cycle", "list"], { env }),
      agl(["prompts", "list", "post-analyzer"], { env }),
      agl(["cycle", "status", first.cycleId], { env }),
      agl(["prompts", "show", "post-analyzer"], { env }),
      agl(["dataset", "list"], { env }),
    ]);
    for (const result of [list, versions, status, show, datasets]) {
      expect(result.stderr).toBe("");
      expect(result.exitCode).toBe(0);
    }

    const listLines = list.stdout.trimEnd().split("\n");
    expect(listLines[0]).toMatch(/^ID\s+AGENT\s+TRIGGER\s+STARTED\s+DURATION\s+STATE\s+RESULT$/);
    expect(listLines[1]).toMatch(/^-+( +-+){6}$/);
    expect(listLines).toHaveLength(3);
    expect(listLines[2]).toContain(first.cycleId);
    expect(listLines[2]).toMatch(new RegExp(`post-analyzer\\s+manual\\s+\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}\\s+[\\d.]+ (ms|s)\\s+${first.outcome}\\s+`));
    expect(listLines[2]).toContain(first.detail);

    const versionLines = versions.stdout.trimEnd().split("\n");
    expect(versionLines[0]).toMatch(/^VERSION\s+LABELS\s+CREATED\s+CREATED BY\s+VALIDATION\s+NOTE$/);
    expect(versionLines[2]).toMatch(/^v1\s/);
    expect(versionLines[3]).toMatch(new RegExp(`^v2\\s+production\\s+.*cycle:${first.cycleId}\\s+${first.best.meanReward.toFixed(3)}\\s`));

    expect(status.stdout).toContain(`Cycle ${first.cycleId}`);
    expect(status.stdout).toMatch(/agent\s+post-analyzer\s+\(data set posts, trigger manual\)/);
    expect(status.stdout).toMatch(/phase\s+done\n/);
    expect(status.stdout).toContain(`outcome    ${first.outcome}: ${first.detail}`);
    expect(status.stdout).toContain(`baseline   mean reward ${first.baseline.meanReward.toFixed(3)} on 60 validation tasks`);

    expect(show.stdout).toMatch(/^post-analyzer v2 \[production\]\n/);
    expect(show.stdout).toContain("── instructions");
    expect(show.stdout).toContain("── rendered system prompt");

    expect(datasets.stdout).toMatch(/^NAME\s+AGENT\s+TASKS\s+SPLITS\s+IMPORTED\s+SOURCE\n/);
    expect(datasets.stdout).toMatch(/\nposts\s+post-analyzer\s+300\s+train 180, validation 60, test 60\s/);
  });

  test("a second cycle without --json prints progress on stderr and a score table on stdout, starting from the production version", async () => {
    const { first } = await firstCycle();
    const productionBefore = 2;
    const { run } = await secondCycle();
    expect(run.exitCode, run.stderr).toBe(0);
    const heading = run.stdout.match(/^Cycle (cy-post-analyzer-\S+): (.*)$/m);
    expect(heading, run.stdout).not.toBeNull();
    const [, cycleId, outcome] = heading!;
    // The first cycle's winner already has what the fake model rewards: nothing beats it.
    expect(outcome).toBe(`kept v${productionBefore}`);
    expect(run.stdout).toMatch(/\n\s+ROLLOUTS\s+MEAN REWARD\s+FIELD ACCURACY\n/);
    expect(run.stdout).toMatch(/collect \(train split\)\s+180 rollouts, 0 failed/);
    expect(run.stdout).toMatch(new RegExp(`baseline v${productionBefore} \\(validation\\)\\s+60 rollouts, 0 failed\\s+-?\\d\\.\\d{3}\\s+category \\d+\\.\\d%, sentiment \\d+\\.\\d%`));
    expect(run.stdout).toContain("data:  PostgreSQL (DATABASE_URL); Temporal at ");
    expect(run.stdout).toContain(`next:  agl prompts list post-analyzer   |   agl cycle status ${cycleId}`);
    // Progress goes to stderr, one line per phase or tenth when stderr is not a terminal.
    expect(run.stderr).toContain(`Cycle ${cycleId}: agent post-analyzer, data set posts, model fake-keyword (deterministic fake)`);
    expect(run.stderr).toMatch(/^(starting|collect|evaluate|train|validate|deploy) \d+\/\d+ \(\d+%, [\d.]+ m?s\)$/m);
    expect(run.stderr).not.toContain("error:");

    const list = json<any[]>(await agl(["cycle", "list", "--json"], { env }));
    expect(list.map((c) => c.id)).toEqual([cycleId, first.cycleId]);
    expect(list[0]).toMatchObject({ phase: "done", incumbentVersion: productionBefore, trigger: "manual" });
    const limited = json<any[]>(await agl(["cycle", "list", "--json", "--limit", "1", "--agent", "post-analyzer"], { env }));
    expect(limited.map((c) => c.id)).toEqual([cycleId]);
    expect(await db.count("cycles")).toBe(2);
  });

  // Temporal keeps listing a worker's pollers for minutes after it exits, so the CLI judges by whether a
  // worker actually picks the new cycle up: right after the previous --wait run's own worker stopped, nobody does.
  test("right after a --wait cycle's own worker exits, a new start on that queue says no worker picked it up, and the cycle is listed and cancellable", async () => {
    const { queueEnv: secondQueueEnv } = await secondCycle();
    const queue = secondQueueEnv.AGL_TASK_QUEUE!;
    const run = await agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "posts", "--json"], { env: secondQueueEnv });
    expect(run.exitCode).toBe(0);
    const started = json<{ cycleId: string; status: string }>(run);
    try {
      expect(started.status).toBe("started");
      expect(run.stderr).toContain(`No worker picked up the cycle on task queue "${queue}"`);
      const status = json<any>(await agl(["cycle", "status", started.cycleId, "--json"], { env: secondQueueEnv }));
      expect(status).toMatchObject({ id: started.cycleId, phase: "starting", outcome: null, finishedAt: null });
      const cancel = await agl(["cycle", "cancel", started.cycleId], { env: secondQueueEnv });
      expect(cancel.exitCode).toBe(0);
      expect(cancel.stdout).toContain(`Cancellation requested for ${started.cycleId}`);
    } finally {
      // Nobody runs this cycle: terminate it so it does not linger on the shared dev server.
      const connection = await Connection.connect({ address: inject("temporalAddress") });
      await new Client({ connection }).workflow.getHandle(started.cycleId).terminate("test cleanup").catch(() => undefined);
      await connection.close();
    }
  });
});

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { agl, createPrivateDatabase, finished, json, type PrivateDatabase, removeDir, scaledEnv, spawnAgl, tempDir, waitFor, writeMiniDataset } from "./support.ts";

describe("one cycle per agent at a time (scaled mode, slow fake model)", () => {
  let db: PrivateDatabase;
  let env: Record<string, string>;
  let dir: string;
  let background: ReturnType<typeof spawnAgl> | undefined;

  beforeAll(async () => {
    db = await createPrivateDatabase();
    env = scaledEnv(db);
    dir = tempDir("agl-cli-running-");
  });
  afterAll(async () => {
    // A no-op when it has exited already; otherwise a failed test must not leave it running.
    background?.kill("SIGTERM");
    await background;
    await db?.close();
    removeDir(dir);
    removeDir(env?.AGL_DATA_DIR);
  });

  test("a second start for the agent is rejected while the first runs, and the first still finishes", { timeout: 120_000 }, async () => {
    const file = writeMiniDataset(dir, "small.jsonl", 20, 5);
    const imported = await agl(["dataset", "import", file, "--name", "small", "--json"], { env });
    expect(imported.exitCode).toBe(0);

    // 200 ms per agent call, one at a time: about 4 s of collect and 4 s of validation.
    const slowEnv = { ...env, AGL_MODEL_LATENCY_MS: "200", AGL_CYCLE_CONCURRENCY: "1", AGL_CYCLE_PARALLEL_BATCHES: "1" };
    background = spawnAgl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "small", "--wait", "--json"], { env: slowEnv, timeoutMs: 90_000 });

    const running = await waitFor(
      "the cycle to show as running",
      async () => {
        const list = await agl(["cycle", "list", "--json"], { env });
        expect(list.exitCode, list.stderr).toBe(0);
        return json<any[]>(list).find((c) => c.finishedAt === null && c.phase !== "starting");
      },
      60_000,
      100,
    );
    expect(running).toMatchObject({ agent: "post-analyzer", dataset: "small", trigger: "manual", outcome: null, deployedVersion: null, incumbentVersion: 1 });

    const [second, secondOtherDataset, table] = await Promise.all([
      agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "small", "--wait", "--json"], { env }),
      agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "posts"], { env }),
      agl(["cycle", "list"], { env }),
    ]);
    for (const rejected of [second, secondOtherDataset]) {
      expect(rejected.exitCode).toBe(2);
      expect(rejected.stderr).toContain(`error: Cycle ${running.id} is already running for agent post-analyzer; one cycle per agent runs at a time.`);
      expect(rejected.stderr).toContain(`agl cycle status ${running.id}`);
      expect(rejected.stdout).toBe("");
    }
    // The human list marks it as running.
    expect(table.stdout).toMatch(new RegExp(`^${running.id}\\s+post-analyzer\\s+manual\\s+\\S+ \\S+\\s+running\\s+\\w+`, "m"));
    // The rejected starts wrote nothing: still one cycle, the lease still held by the first.
    expect(await db.count("cycles")).toBe(1);
    expect(await db.query("SELECT agent, cycle_id FROM agent_leases")).toEqual([{ agent: "post-analyzer", cycle_id: running.id }]);

    const waited = finished(await background);
    expect(waited.stderr).not.toContain("error:");
    expect(waited.exitCode).toBe(0);
    const result = json(waited);
    expect(result).toMatchObject({ cycleId: running.id, outcome: "kept", deployedVersion: null, collect: { rollouts: 20, failed: 0 }, baseline: { rollouts: 5, failed: 0 }, best: { failed: 0 } });

    const status = json(await agl(["cycle", "status", running.id, "--json"], { env }));
    expect(status).toMatchObject({ id: running.id, phase: "done", outcome: result.outcome, finishedAt: expect.any(String), result });
    expect(await db.count("agent_leases")).toBe(0);
    expect(await db.count("cycles")).toBe(1);

    // Cancelling a cycle that has ended is rejected as a request (exit 2), not reported as a failure.
    const cancel = await agl(["cycle", "cancel", running.id], { env });
    expect(cancel.exitCode).toBe(2);
    expect(cancel.stderr).toBe(`error: Cycle ${running.id} is not running.\n`);
    const unknown = await agl(["cycle", "cancel", "cy-unknown"], { env });
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('error: Cycle "cy-unknown" does not exist.');
  });
});

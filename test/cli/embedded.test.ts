import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { agl, embeddedEnv, finished, json, processesWith, removeDir, spawnAgl, tempDir, waitFor, writeMiniDataset } from "./support.ts";

/**
 * Embedded mode: no TEMPORAL_ADDRESS, no DATABASE_URL. The first command claims the data folder, opens
 * PGlite in it and starts its own Temporal dev server; data persists between commands.
 */
describe("agl in embedded mode (PGlite + its own Temporal dev server in the data folder)", () => {
  let home: string;
  let dataDir: string;
  let env: Record<string, string>;
  let background: ReturnType<typeof spawnAgl> | undefined;

  // Every test has a data folder of its own, so any one of them passes alone.
  beforeEach(() => {
    home = tempDir("agl-cli-embedded-");
    dataDir = join(home, "data");
    env = embeddedEnv(dataDir);
  });
  afterEach(async () => {
    // A no-op when it has exited already; otherwise a failed test must not leave it running.
    background?.kill("SIGTERM");
    await background;
    background = undefined;
    removeDir(home);
  });

  const temporalDb = () => join(dataDir, "temporal", "temporal.db");
  const devServers = () => processesWith("start-dev", temporalDb());

  test("a full cycle, then prompts and cycles listed by later commands in the same data folder", { timeout: 180_000 }, async () => {
    expect(existsSync(dataDir)).toBe(false);
    const start = await agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "posts", "--wait", "--json"], { env, cwd: home, timeoutMs: 150_000 });
    expect(start.stderr).not.toContain("error:");
    expect(start.exitCode).toBe(0);
    const result = json(start);
    // The fake model on the bundled posts deploys the same candidate on every run.
    expect(result).toMatchObject({
      outcome: "deployed",
      deployedVersion: 2,
      agent: "post-analyzer",
      incumbentVersion: 1,
      collect: { rollouts: 180, failed: 0 },
      baseline: { rollouts: 60, failed: 0 },
      best: { rollouts: 60, failed: 0 },
    });

    // The data folder holds the PGlite cluster and the dev server's SQLite file...
    expect(existsSync(join(dataDir, "pglite", "PG_VERSION"))).toBe(true);
    expect(existsSync(temporalDb())).toBe(true);
    // ...and the command stopped what it started: no dev server on that file, no pid file left behind.
    expect(devServers()).toEqual([]);
    expect(existsSync(join(dataDir, "temporal", "server.pid"))).toBe(false);

    const versions = await agl(["prompts", "list", "post-analyzer", "--json"], { env, cwd: home });
    expect(versions.stderr).toBe("");
    expect(versions.exitCode).toBe(0);
    const listed = json<any[]>(versions);
    expect(listed.map((v) => [v.version, v.labels])).toEqual([
      [1, []],
      [2, ["production"]],
    ]);
    expect(listed[1]).toMatchObject({ createdBy: `cycle:${result.cycleId}`, parentVersion: 1, metrics: { validation: result.best } });
    expect(listed[0]).toMatchObject({ createdBy: "agent:post-analyzer", parentVersion: null });

    const cycles = await agl(["cycle", "list", "--json"], { env, cwd: home });
    expect(cycles.stderr).toBe("");
    expect(cycles.exitCode).toBe(0);
    expect(json(cycles)).toEqual([
      expect.objectContaining({
        id: result.cycleId,
        agent: "post-analyzer",
        dataset: "posts",
        trigger: "manual",
        phase: "done",
        outcome: result.outcome,
        outcomeDetail: result.detail,
        incumbentVersion: 1,
        deployedVersion: result.deployedVersion,
        finishedAt: expect.any(String),
        result,
      }),
    ]);
    // The store-only commands never started a dev server.
    expect(devServers()).toEqual([]);
  });

  test("while a cycle runs, other commands reach the owner's PGlite and Temporal; a second start conflicts; cancel ends it", { timeout: 120_000 }, async () => {
    const file = writeMiniDataset(home, "mini.jsonl", 30, 4);
    const imported = await agl(["dataset", "import", file, "--name", "mini", "--json"], { env, cwd: home });
    expect(imported.exitCode).toBe(0);
    expect(json(imported)).toMatchObject({ name: "mini", taskCount: 34, splits: { train: 30, validation: 4 } });

    // A slow fake model, one agent run at a time: collecting 30 posts takes about 10 s.
    const slowEnv = { ...env, AGL_MODEL_LATENCY_MS: "300", AGL_CYCLE_CONCURRENCY: "1", AGL_CYCLE_PARALLEL_BATCHES: "1" };
    background = spawnAgl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "mini", "--wait", "--json"], { env: slowEnv, cwd: home, timeoutMs: 90_000 });

    // `cycle list` goes through the owning process: it must not open the PGlite folder itself.
    const running = await waitFor(
      "the cycle to show as running",
      async () => {
        const list = await agl(["cycle", "list", "--json"], { env, cwd: home });
        expect(list.exitCode, list.stderr).toBe(0);
        return json<any[]>(list).find((c) => c.dataset === "mini" && c.phase === "collect");
      },
      60_000,
    );
    expect(running).toMatchObject({ agent: "post-analyzer", trigger: "manual", outcome: null, finishedAt: null, deployedVersion: null });
    expect(devServers()).toHaveLength(1);

    // Several commands at once, all going through the owner: status asks its dev server for live
    // progress, a second start for the agent is rejected, lists read its PGlite.
    const [status, second, table, versionsDuring] = await Promise.all([
      agl(["cycle", "status", running.id, "--json"], { env, cwd: home }),
      agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "mini"], { env, cwd: home }),
      agl(["cycle", "list"], { env, cwd: home }),
      agl(["prompts", "list", "post-analyzer", "--json"], { env, cwd: home }),
    ]);
    expect(status.exitCode, status.stderr).toBe(0);
    expect(json(status)).toMatchObject({ id: running.id, finishedAt: null, live: { cycleId: running.id, phase: "collect", progress: { total: 30 } } });
    expect(second.exitCode).toBe(2);
    expect(second.stderr).toContain(`error: Cycle ${running.id} is already running for agent post-analyzer`);
    expect(second.stdout).toBe("");
    expect(table.exitCode, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^${running.id}\\s+post-analyzer\\s+manual\\s+\\S+ \\S+\\s+running\\s+collect`, "m"));
    expect(versionsDuring.exitCode, versionsDuring.stderr).toBe(0);
    const versionsBefore = json<any[]>(versionsDuring);
    expect(devServers()).toHaveLength(1);

    const cancel = await agl(["cycle", "cancel", running.id], { env, cwd: home });
    expect(cancel.stderr).toBe("");
    expect(cancel.exitCode).toBe(0);
    expect(cancel.stdout).toBe(`Cancellation requested for ${running.id}.\n`);

    const waited = finished(await background);
    expect(waited.exitCode).toBe(1);
    expect(waited.stderr).toMatch(/^error: .*cancel/im);
    // No summary is printed. (stdout is not asserted empty: the Temporal core's own WARN lines, such as
    // "Activity not found on completion" after a cancellation, go to stdout; reported separately.)
    expect(waited.stdout).not.toContain('"outcome"');
    expect(devServers()).toEqual([]);

    // One after the other: concurrent commands without a long-lived owner race (see the report).
    const after = await agl(["cycle", "status", running.id, "--json"], { env, cwd: home });
    expect(after.exitCode, after.stderr).toBe(0);
    const cancelled = json(after);
    expect(cancelled).toMatchObject({ id: running.id, phase: "done", outcome: "cancelled", deployedVersion: null, finishedAt: expect.any(String) });
    expect(cancelled.live).toBeUndefined();
    // Nothing was deployed by the cancelled cycle, which is listed.
    expect(json<any[]>(await agl(["cycle", "list", "--json"], { env, cwd: home })).map((c) => c.id)).toEqual([running.id]);
    expect(json<any[]>(await agl(["prompts", "list", "post-analyzer", "--json"], { env, cwd: home }))).toEqual(versionsBefore);

    // Cancelling a cycle that has ended is a request the CLI rejects, not a failure.
    const again = await agl(["cycle", "cancel", running.id], { env, cwd: home });
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toContain(`error: Cycle ${running.id} is not running.`);
    expect(devServers()).toEqual([]);
    expect(readdirSync(join(dataDir, "temporal"))).not.toContain("server.pid");
  });

  test("short commands started at the same moment all succeed: whoever owns the folder lets the others finish before closing", { timeout: 120_000 }, async () => {
    const imported = await agl(["dataset", "import", writeMiniDataset(home, "mini.jsonl", 8, 4), "--name", "mini"], { env, cwd: home });
    expect(imported.exitCode, imported.stderr).toBe(0);
    for (let round = 0; round < 3; round++) {
      const runs = await Promise.all(
        [["cycle", "list", "--json"], ["prompts", "list", "post-analyzer", "--json"], ["dataset", "list", "--json"]].map((args) => agl(args, { env, cwd: home })),
      );
      for (const run of runs) {
        expect(run.stderr).not.toContain("error:");
        expect(run.exitCode).toBe(0);
        expect(Array.isArray(json(run))).toBe(true);
      }
    }
  });
});

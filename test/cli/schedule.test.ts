import { randomBytes } from "node:crypto";
import { Client, Connection } from "@temporalio/client";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { inject } from "vitest";
import { agl, createPrivateDatabase, json, type PrivateDatabase, scaledEnv, spawnAgl, waitFor } from "./support.ts";

describe("agl schedule (scaled mode: the shared Temporal dev server, PostgreSQL, fake model)", () => {
  let database: PrivateDatabase;
  let env: Record<string, string>;
  const id = `nightly-${randomBytes(3).toString("hex")}`;

  beforeAll(async () => {
    database = await createPrivateDatabase();
    env = scaledEnv(database);
  });
  afterAll(async () => {
    await agl(["schedule", "delete", id], { env });
    await database.close();
  });

  test("create, list, describe, pause, resume, trigger (the run shows up in cycle list with its trigger), delete", { timeout: 240_000 }, async () => {
    const created = await agl(["schedule", "create", id, "--agent", "post-analyzer", "--dataset", "posts", "--cron", "0 2 * * *", "--timezone", "Europe/Paris", "--paused", "--json"], { env });
    expect(created.stderr).not.toContain("error:");
    expect(created.exitCode).toBe(0);
    expect(json(created)).toMatchObject({ id, agent: "post-analyzer", dataset: "posts", cron: "0 2 * * *", timezone: "Europe/Paris", paused: true, overlap: "skip", recentRuns: [] });

    const again = await agl(["schedule", "create", id, "--agent", "post-analyzer", "--dataset", "posts", "--every", "1h"], { env });
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toContain(`Schedule "${id}" already exists`);
    const negative = await agl(["schedule", "create", `${id}-x`, "--agent", "post-analyzer", "--dataset", "posts", "--every", "-5m"], { env });
    expect(negative.exitCode).toBe(2);
    expect(negative.stderr).toContain("--every must be a positive duration");

    const list = json<any[]>(await agl(["schedule", "list", "--json"], { env }));
    expect(list.map((s) => s.id)).toContain(id);
    expect(list.map((s) => s.id)).not.toContain(`${id}-x`);

    expect((await agl(["schedule", "resume", id], { env })).exitCode).toBe(0);
    const resumed = json<any>(await agl(["schedule", "describe", id, "--json"], { env }));
    expect(resumed.paused).toBe(false);
    // 02:00 in Paris is 01:00 UTC in winter and 00:00 UTC in summer.
    expect(resumed.nextRuns.length).toBeGreaterThan(0);
    for (const run of resumed.nextRuns as string[]) expect(run).toMatch(/T0[01]:00:00\.000Z$/);
    expect((await agl(["schedule", "pause", id], { env })).exitCode).toBe(0);
    expect(json<any>(await agl(["schedule", "describe", id, "--json"], { env })).paused).toBe(true);

    // A worker runs the scheduled cycle, as `agl worker` would on a worker machine.
    const worker = spawnAgl(["worker"], { env, timeoutMs: 100_000 });
    try {
      await waitFor("the worker to poll", async () => ((await taskQueuePolled(env.AGL_TASK_QUEUE!)) ? true : undefined), 30_000);
      expect((await agl(["schedule", "trigger", id], { env })).exitCode).toBe(0);
      const run = await waitFor(
        "the triggered run to finish",
        async () => json<any>(await agl(["schedule", "describe", id, "--json"], { env })).recentRuns.find((r: any) => r.outcome && r.outcome !== "running"),
        90_000,
        1_000,
      );
      expect(run.outcome).toBe("deployed");
      const cycles = json<any[]>(await agl(["cycle", "list", "--json"], { env }));
      expect(cycles.find((c) => c.id === run.cycleId)).toMatchObject({ trigger: `schedule:${id}`, outcome: run.outcome });
      const human = await agl(["schedule", "describe", id], { env });
      expect(human.stdout).toContain(`Schedule ${id}: paused`);
      expect(human.stdout).toContain('cron "0 2 * * *" (Europe/Paris)');
      expect(human.stdout).toContain(run.cycleId);
    } finally {
      worker.kill("SIGTERM");
      await worker;
    }

    expect((await agl(["schedule", "delete", id], { env })).exitCode).toBe(0);
    const gone = await agl(["schedule", "describe", id], { env });
    expect(gone.exitCode).toBe(2);
    expect(gone.stderr).toContain(`Schedule "${id}" does not exist`);
  });
});

async function taskQueuePolled(queue: string): Promise<boolean> {
  const connection = await Connection.connect({ address: inject("temporalAddress") });
  try {
    const response = await new Client({ connection }).workflowService.describeTaskQueue({ namespace: "default", taskQueue: { name: queue } });
    return (response.pollers?.length ?? 0) > 0;
  } finally {
    await connection.close();
  }
}

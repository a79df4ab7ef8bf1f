import { setTimeout as sleep } from "node:timers/promises";
import type { ResultPromise } from "execa";
import { afterEach, expect, test } from "vitest";
import { queueRolloutId } from "../../activities/queue-activities.ts";
import { readDatasetFile } from "../../agents/dataset-file.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { submitTasks } from "../../runtime/submissions.ts";
import { modelCalls, modelCallsFile } from "../support/model-calls.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, testConfig } from "../support/temporal.ts";
import { killWorkers, spawnWorker } from "../support/worker-process.ts";

let db: TestStore | undefined;
const children: ResultPromise[] = [];

afterEach(async () => {
  await killWorkers(children);
  await db?.close();
});

test("killing a worker in the middle of a submission's batches loses and doubles nothing; a restarted worker finishes it", async () => {
  db = await openTestStore("pglite");
  const cycle = { batchSize: 8, concurrency: 2, parallelBatches: 3 };
  const config = testConfig({ cycle });
  // A worker child reads its settings from these overrides: the same queue, Temporal and batch shape.
  const overrides = { dataDir: config.dataDir, temporal: { address: config.temporal.address, taskQueue: config.temporal.taskQueue }, model: { provider: "fake" }, cycle };
  const tasks = (await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer)).slice(100, 136);
  const temporal = await connectClient(config);
  try {
    const firstCalls = modelCallsFile();
    const restartedCalls = modelCallsFile();
    const { child: first } = await spawnWorker(children, overrides, db.connection, 80, { modelCallsFile: firstCalls });
    const submission = await submitTasks({ config, store: db.store, client: temporal.client, agent: postAnalyzer, tasks, source: "test", again: false, settings: { heartbeatTimeoutSeconds: 2 } });
    const stored = async () => (await db!.store.submissions.storedRollouts(submission.submissionId)).stored;
    for (let tries = 0; (await stored()) < 6; tries++) {
      expect(tries, "the first worker never got going").toBeLessThan(300);
      await sleep(50);
    }
    first.kill("SIGKILL");
    await first.catch(() => undefined);
    const beforeRestart = await stored();
    expect(beforeRestart).toBeLessThan(tasks.length);

    await spawnWorker(children, overrides, db.connection, 0, { modelCallsFile: restartedCalls });
    const result = await submission.handle!.result();

    const ids = tasks.map((task) => queueRolloutId(submission.submissionId, task.id));
    const rollouts = await db.store.rollouts.getMany(ids);
    expect(rollouts.map((rollout) => rollout.id)).toEqual(ids);
    expect(await stored()).toBe(tasks.length);
    expect(await db.store.rollouts.countForAgent({ agent: postAnalyzer.id })).toBe(tasks.length);
    expect(rollouts.every((rollout) => rollout.rewards.filter((reward) => reward.scorer === "ground-truth").length === 1)).toBe(true);
    expect(result.tasks).toBe(tasks.length);
    expect(result.rewarded).toBe(tasks.length);
    // Every batch reports once, from its attempt that finished.
    expect(result.ran + result.skipped).toBe(tasks.length);
    // What the dead worker had stored of the batches it started was skipped, not run again: the restarted
    // worker ran the agent once for each task stored nowhere, and for no other.
    expect(result.skipped).toBeGreaterThan(0);
    expect(result.skipped).toBeLessThanOrEqual(beforeRestart);
    expect(modelCalls(restartedCalls)).toBe(tasks.length - beforeRestart);
    expect(modelCalls(firstCalls)).toBeGreaterThanOrEqual(beforeRestart);
  } finally {
    await temporal.close();
  }
}, 120_000);

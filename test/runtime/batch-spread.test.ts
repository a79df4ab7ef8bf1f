import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { ResultPromise } from "execa";
import { afterEach, expect, test } from "vitest";
import { prepareAgent } from "../../activities/cycle-activities.ts";
import { readDatasetFile } from "../../agents/dataset-file.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import type { LoadedConfig } from "../../config/load.ts";
import { cycleSettings } from "../../runtime/cycles.ts";
import { submitTasks } from "../../runtime/submissions.ts";
import type { EvaluationInput, evaluatePrompts } from "../../workflows/evaluation.ts";
import { running, startsByWorker } from "../support/history.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, testConfig } from "../support/temporal.ts";
import { killWorkers, spawnWorker } from "../support/worker-process.ts";

/**
 * Agent batches go to the workers by capacity: two workers taking two batches each split four batches
 * 2/2, whichever of them runs the workflow. Every model call waits for a gate file until all four
 * batches run, so the split cannot depend on which worker happens to be quicker.
 */
let db: TestStore | undefined;
const children: ResultPromise[] = [];

afterEach(async () => {
  await killWorkers(children);
  await db?.close();
});

const cycle = { batchSize: 4, concurrency: 2, parallelBatches: 4 };

/** Two worker processes of two batches each, their model calls held until the returned gate opens. */
async function twoWorkers(config: LoadedConfig): Promise<{ identities: string[]; open(): void }> {
  const overrides = { dataDir: config.dataDir, temporal: { address: config.temporal.address, taskQueue: config.temporal.taskQueue }, model: { provider: "fake" }, cycle, worker: { maxBatches: 2 } };
  const gate = join(config.dataPath, "gate");
  const workers = [await spawnWorker(children, overrides, db!.connection, 0, { gate }), await spawnWorker(children, overrides, db!.connection, 0, { gate })];
  // A worker's default identity is pid@host.
  return { identities: workers.map(({ child }) => `${child.pid}@${hostname()}`).sort(), open: () => writeFileSync(gate, "") };
}

test("a submission's four batches split 2/2 between two workers of two batches each", async () => {
  db = await openTestStore("pglite");
  const config = testConfig({ cycle });
  const tasks = (await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer)).slice(0, 16);
  const temporal = await connectClient(config);
  try {
    const workers = await twoWorkers(config);
    const { handle } = await submitTasks({ config, store: db.store, client: temporal.client, agent: postAnalyzer, tasks, source: "test", again: false });
    const runningOn = await running(handle!, 4);
    workers.open();
    const result = await handle!.result();

    expect(result.ran).toBe(tasks.length);
    expect(runningOn.sort()).toEqual([workers.identities[0], workers.identities[0], workers.identities[1], workers.identities[1]]);
    expect(Object.fromEntries(await startsByWorker(handle!, "runQueueBatch"))).toEqual({ [workers.identities[0]!]: 2, [workers.identities[1]!]: 2 });
  } finally {
    await temporal.close();
  }
});

test("an evaluation's (agl test's, and a cycle's) four batches split 2/2 between two workers of two batches each", async () => {
  db = await openTestStore("pglite");
  const config = testConfig({ cycle });
  const tasks = (await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer)).slice(0, 16);
  await db.store.datasets.importTasks({ name: "spread", agent: postAnalyzer.id, source: "test", tasks });
  await prepareAgent(db.store, postAnalyzer, undefined);
  const temporal = await connectClient(config);
  try {
    const workers = await twoWorkers(config);
    const input: EvaluationInput = {
      agent: postAnalyzer.id,
      dataset: "spread",
      split: "train",
      taskIds: tasks.map((task) => task.id),
      contenders: [{ contender: "v1", description: "v1", prompt: { version: 1 } }],
      repeats: 1,
      settings: { ...cycleSettings(config), ...cycle },
    };
    const handle = await temporal.client.workflow.start<typeof evaluatePrompts>("evaluatePrompts", { taskQueue: config.temporal.taskQueue, workflowId: `ev-spread-${Date.now()}`, args: [input] });
    const runningOn = await running(handle, 4);
    workers.open();
    const result = await handle.result();

    expect(result.contenders[0]!.rollouts).toBe(tasks.length);
    expect(runningOn.sort()).toEqual([workers.identities[0], workers.identities[0], workers.identities[1], workers.identities[1]]);
    expect(Object.fromEntries(await startsByWorker(handle, "runAgentBatch"))).toEqual({ [workers.identities[0]!]: 2, [workers.identities[1]!]: 2 });
  } finally {
    await temporal.close();
  }
});

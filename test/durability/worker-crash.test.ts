import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { execa, type ResultPromise } from "execa";
import { afterEach, expect, test } from "vitest";
import { inject } from "vitest";
import { rolloutId } from "../../activities/cycle-activities.ts";
import { startCycle } from "../../runtime/cycles.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, testConfig } from "../support/temporal.ts";
import { importSubset } from "../support/datasets.ts";

const NODE = fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url));
const WORKER = fileURLToPath(new URL("../fixtures/worker-process.ts", import.meta.url));

let db: TestStore | undefined;
const children: ResultPromise[] = [];

afterEach(async () => {
  for (const child of children) child.kill("SIGKILL");
  await Promise.allSettled(children);
  children.length = 0;
  await db?.close();
});

/** Resolves once the worker polls; returns the child in a wrapper (an execa child is a thenable of its exit). */
async function spawnWorker(overrides: Record<string, unknown>, connection: TestStore["connection"], latencyMs: number): Promise<{ child: ResultPromise }> {
  const child = execa(NODE, [WORKER], {
    env: {
      AGL_TEST_CONFIG: JSON.stringify(overrides),
      AGL_TEST_STORE: JSON.stringify(connection),
      AGL_TEST_BUNDLE: inject("workflowBundlePath"),
      AGL_TEST_LATENCY_MS: String(latencyMs),
    },
    reject: false,
    stdout: "pipe",
    stderr: "pipe",
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => chunk.toString().includes("ready") && resolve());
    child.then((result) => reject(new Error(`worker exited before it was ready: ${result.stderr}`)));
  });
  return { child };
}

test("killing the worker in the middle of collect loses and duplicates nothing; a restarted worker finishes the cycle", async () => {
  db = await openTestStore("pglite");
  const config = testConfig();
  const overrides = { dataDir: config.dataDir, temporal: { address: config.temporal.address, taskQueue: config.temporal.taskQueue }, model: { provider: "fake" } };
  const { train, validation } = await importSubset(db.store, "durable", 40, 12);
  const temporal = await connectClient(config);
  try {
    const { child: first } = await spawnWorker(overrides, db.connection, 60);
    const handle = await startCycle({
      config,
      store: db.store,
      client: temporal.client,
      agent: "post-analyzer",
      dataset: "durable",
      settings: { batchSize: 4, concurrency: 2, parallelBatches: 2, heartbeatTimeoutSeconds: 2 },
    });
    const collected = () => db!.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "collect" });
    for (let tries = 0; (await collected()).length < 10; tries++) {
      expect(tries, "the first worker never got going").toBeLessThan(200);
      await sleep(50);
    }
    first.kill("SIGKILL");
    await first.catch(() => undefined);
    const beforeRestart = (await collected()).length;
    expect(beforeRestart).toBeLessThan(train.length);

    await spawnWorker(overrides, db.connection, 0);
    const result = await handle.result();

    const collect = await collected();
    expect(collect).toHaveLength(train.length);
    expect(new Set(collect.map((r) => r.taskId))).toEqual(new Set(train));
    expect(collect.map((r) => r.id).sort()).toEqual(train.map((taskId) => rolloutId(handle.workflowId, "collect", "v1", taskId)).sort());
    expect(collect.every((r) => r.rewards.length === 1)).toBe(true);

    const validate = await db.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "validate" });
    const contenders = 1 + (await db.store.cycles.candidates(handle.workflowId)).length;
    expect(validate).toHaveLength(validation.length * contenders);
    expect(new Set(validate.map((r) => `${r.candidateId}/${r.taskId}`)).size).toBe(validate.length);

    const versions = (await db.store.resources.listVersions("post-analyzer")).map((v) => v.version);
    expect(versions).toEqual(result.outcome === "deployed" ? [1, 2] : [1]);
    expect((await db.store.cycles.get(handle.workflowId)).outcome).toBe(result.outcome);
  } finally {
    await temporal.close();
  }
});

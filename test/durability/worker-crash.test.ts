import { readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ResultPromise } from "execa";
import { afterEach, expect, test } from "vitest";
import { rolloutId } from "../../activities/cycle-activities.ts";
import { startCycle } from "../../runtime/cycles.ts";
import { BACKENDS, openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, testConfig } from "../support/temporal.ts";
import { importSubset } from "../support/datasets.ts";
import { spawnWorker as spawnWorkerProcess } from "../support/worker-process.ts";

let db: TestStore | undefined;
const children: ResultPromise[] = [];

afterEach(async () => {
  for (const child of children) child.kill("SIGKILL");
  await Promise.allSettled(children);
  children.length = 0;
  await db?.close();
});

const spawnWorker = (overrides: Record<string, unknown>, connection: TestStore["connection"], latencyMs: number) => spawnWorkerProcess(children, overrides, connection, latencyMs);

test.each(BACKENDS)("killing the worker in the middle of collect loses and duplicates nothing; a restarted worker finishes the cycle (%s)", async (backend) => {
  db = await openTestStore(backend);
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
    const contenders = 1 + (result.search?.finalists.length ?? 0);
    expect(validate).toHaveLength(validation.length * contenders);
    expect(new Set(validate.map((r) => `${r.candidateId}/${r.taskId}`)).size).toBe(validate.length);

    const versions = (await db.store.resources.listVersions("post-analyzer")).map((v) => v.version);
    expect(versions).toEqual(result.outcome === "deployed" ? [1, 2] : [1]);
    expect((await db.store.cycles.get(handle.workflowId)).outcome).toBe(result.outcome);
  } finally {
    await temporal.close();
  }
});

test.each(BACKENDS)("killing the worker in the middle of the search's second round resumes at that round: no round proposed twice, no search rollout doubled (%s)", async (backend) => {
  db = await openTestStore(backend);
  const config = testConfig({ optimizer: { rounds: 2, beamWidth: 2, candidates: 2 } });
  const overrides = {
    dataDir: config.dataDir,
    temporal: { address: config.temporal.address, taskQueue: config.temporal.taskQueue },
    model: { provider: "fake" },
    optimizer: { rounds: 2, beamWidth: 2, candidates: 2 },
  };
  await importSubset(db.store, "durable", 40, 12);
  const temporal = await connectClient(config);
  try {
    const { child: first } = await spawnWorker(overrides, db.connection, 60);
    const handle = await startCycle({
      config,
      store: db.store,
      client: temporal.client,
      agent: "post-analyzer",
      dataset: "durable",
      settings: { batchSize: 2, concurrency: 1, parallelBatches: 2, heartbeatTimeoutSeconds: 2 },
    });
    const secondRound = async () =>
      (await db!.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "search" })).filter((r) => r.candidateId?.startsWith("r2c")).length;
    for (let tries = 0; (await secondRound()) < 2; tries++) {
      expect(tries, "the search never reached round 2").toBeLessThan(600);
      await sleep(50);
    }
    first.kill("SIGKILL");
    await first.catch(() => undefined);

    await spawnWorker(overrides, db.connection, 0);
    const result = await handle.result();

    expect(result.search!.rounds.map((round) => round.round)).toEqual([1, 2]);
    // One optimizer request and response per round: the finished first round was not proposed again.
    const files = readdirSync(join(config.dataDir, "work", "optimizer")).filter((file) => file.startsWith(handle.workflowId.replace(/[^A-Za-z0-9._-]+/g, "_")));
    expect(files.sort()).toEqual(
      [1, 2].flatMap((round) => [`${handle.workflowId}_round_${round}.request.json`, `${handle.workflowId}_round_${round}.response.json`]).sort(),
    );
    const searched = await db.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "search" });
    expect(new Set(searched.map((r) => `${r.candidateId}/${r.taskId}`)).size).toBe(searched.length);
    const devTasks = result.search!.rounds[0]!.scores[0]!.rollouts;
    expect(searched).toHaveLength(devTasks * (await db.store.cycles.candidates(handle.workflowId)).length);
    expect((await db.store.resources.listVersions("post-analyzer")).length).toBe(result.outcome === "deployed" ? 2 : 1);
  } finally {
    await temporal.close();
  }
});

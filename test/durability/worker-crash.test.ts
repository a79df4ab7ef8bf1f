import { setTimeout as sleep } from "node:timers/promises";
import type { ResultPromise } from "execa";
import { afterEach, expect, test } from "vitest";
import { rolloutId } from "../../activities/cycle-activities.ts";
import { startCycle } from "../../runtime/cycles.ts";
import { BACKENDS, openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, testConfig } from "../support/temporal.ts";
import { importSubset } from "../support/datasets.ts";
import { modelCalls, modelCallsFile } from "../support/model-calls.ts";
import { spawnWorker as spawnWorkerProcess } from "../support/worker-process.ts";

let db: TestStore | undefined;
const children: ResultPromise[] = [];

afterEach(async () => {
  for (const child of children) child.kill("SIGKILL");
  await Promise.allSettled(children);
  children.length = 0;
  await db?.close();
});

const spawnWorker = (overrides: Record<string, unknown>, connection: TestStore["connection"], latencyMs: number, callsFile: string) =>
  spawnWorkerProcess(children, overrides, connection, latencyMs, { modelCallsFile: callsFile });

/**
 * Agent runs, not rows (a duplicate row cannot exist by schema): the restarted worker ran the agent once
 * for every rollout of the cycle the dead worker had not stored, and never for one it had.
 */
async function expectStoredRolloutsNotRunAgain(cycleId: string, storedAtKill: number, restartedCalls: string) {
  expect(modelCalls(restartedCalls)).toBe((await db!.store.rollouts.countForCycle(cycleId)) - storedAtKill);
}

test.each(BACKENDS)("killing the worker in the middle of collect loses and duplicates nothing; a restarted worker finishes the cycle (%s)", async (backend) => {
  db = await openTestStore(backend);
  const config = testConfig();
  const overrides = { dataDir: config.dataDir, temporal: { address: config.temporal.address, taskQueue: config.temporal.taskQueue }, model: { provider: "fake" } };
  const { train, validation } = await importSubset(db.store, "durable", 40, 12);
  const temporal = await connectClient(config);
  try {
    const restartedCalls = modelCallsFile();
    const { child: first } = await spawnWorker(overrides, db.connection, 100, modelCallsFile());
    // A batch stores its rollouts four at a time: batches of 8 are half stored at the first rows seen,
    // so the batches the kill interrupts have rows for the retry to skip.
    const handle = await startCycle({
      config,
      store: db.store,
      client: temporal.client,
      agent: "post-analyzer",
      dataset: "durable",
      settings: { batchSize: 8, concurrency: 2, parallelBatches: 2, heartbeatTimeoutSeconds: 2 },
    });
    const collected = () => db!.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "collect" });
    for (let tries = 0; (await collected()).length < 4; tries++) {
      expect(tries, "the first worker never got going").toBeLessThan(200);
      await sleep(50);
    }
    first.kill("SIGKILL");
    await first.catch(() => undefined);
    const beforeRestart = (await collected()).length;
    expect(beforeRestart).toBeLessThan(train.length);
    const storedAtKill = await db.store.rollouts.countForCycle(handle.workflowId);

    await spawnWorker(overrides, db.connection, 0, restartedCalls);
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
    await expectStoredRolloutsNotRunAgain(handle.workflowId, storedAtKill, restartedCalls);

    // The fake model and the seeded optimizer decide the same on every run: on this subset no candidate clears the gate.
    expect(result.outcome).toBe("kept");
    expect((await db.store.resources.listVersions("post-analyzer")).map((v) => v.version)).toEqual([1]);
    expect((await db.store.cycles.get(handle.workflowId)).outcome).toBe("kept");
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
    const restartedCalls = modelCallsFile();
    const { child: first } = await spawnWorker(overrides, db.connection, 60, modelCallsFile());
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
    const storedAtKill = await db.store.rollouts.countForCycle(handle.workflowId);

    await spawnWorker(overrides, db.connection, 0, restartedCalls);
    const result = await handle.result();

    expect(result.search!.rounds.map((round) => round.round)).toEqual([1, 2]);
    // One proposal per round, each done by its first attempt: the finished first round was not proposed again.
    const proposals = (await handle.fetchHistory()).events!.filter(
      (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === "proposeCandidates",
    );
    expect(proposals).toHaveLength(2);
    const proposalEvents = new Set(proposals.map((event) => String(event.eventId)));
    const finished = (await handle.fetchHistory()).events!.filter((event) =>
      proposalEvents.has(String(event.activityTaskCompletedEventAttributes?.scheduledEventId ?? event.activityTaskStartedEventAttributes?.scheduledEventId)),
    );
    expect(finished.filter((event) => event.activityTaskCompletedEventAttributes)).toHaveLength(2);
    expect(finished.filter((event) => event.activityTaskStartedEventAttributes).map((event) => event.activityTaskStartedEventAttributes!.attempt)).toEqual([1, 1]);
    const searched = await db.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "search" });
    expect(new Set(searched.map((r) => `${r.candidateId}/${r.taskId}`)).size).toBe(searched.length);
    const devTasks = result.search!.rounds[0]!.scores[0]!.rollouts;
    expect(searched).toHaveLength(devTasks * (await db.store.cycles.candidates(handle.workflowId)).length);
    await expectStoredRolloutsNotRunAgain(handle.workflowId, storedAtKill, restartedCalls);
    expect(result.outcome).toBe("kept");
    expect((await db.store.resources.listVersions("post-analyzer")).map((v) => v.version)).toEqual([1]);
  } finally {
    await temporal.close();
  }
});

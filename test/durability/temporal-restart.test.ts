import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Client, Connection } from "@temporalio/client";
import { expect, test } from "vitest";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { installPath } from "../../config/paths.ts";
import { startCycle } from "../../runtime/cycles.ts";
import { freePort, startDevServer } from "../../runtime/temporal-dev-server.ts";
import { startTestWorker, testConfig } from "../support/temporal.ts";
import { importSubset } from "../support/datasets.ts";
import { modelCalls, modelCallsFile, countingModel } from "../support/model-calls.ts";
import { openTestStore } from "../support/stores.ts";

test("killing the Temporal server mid-collect: restarted on its SQLite file, the cycle resumes and finishes exactly once", async () => {
  const stateDir = mkdtempSync(join(tmpdir(), "agl-temporal-state-"));
  const ports = { port: await freePort(), uiPort: await freePort() };
  const serverOptions = { cli: installPath(".venv/bin/temporal"), stateDir, namespace: "default", ...ports };
  let server = await startDevServer(serverOptions);
  const db = await openTestStore("pglite");
  const config = testConfig({ temporal: { address: server.address, taskQueue: "restart" } });
  const { train, validation } = await importSubset(db.store, "restart", 32, 8);
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const calls = modelCallsFile();
  const worker = await startTestWorker(config, db.store, countingModel(fakeKeywordModel({ latencyMs: 40 }), calls));
  try {
    const handle = await startCycle({
      config,
      store: db.store,
      client,
      agent: "post-analyzer",
      dataset: "restart",
      settings: { batchSize: 4, concurrency: 1, parallelBatches: 2, heartbeatTimeoutSeconds: 3 },
    });
    const collected = () => db.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "collect" });
    for (let tries = 0; (await collected()).length < 6; tries++) {
      expect(tries, "collect never started").toBeLessThan(300);
      await sleep(50);
    }
    expect((await collected()).length).toBeLessThan(train.length);
    const killedAt = Date.now();
    process.kill(server.pid, "SIGKILL");
    await server.stop();
    await sleep(1_000);
    server = await startDevServer(serverOptions);

    const result = await handle.result();
    // The collect phase was unfinished when the server died: the server recorded its end (the optimizer's
    // first call, scheduled once every collect batch is done) only after it came back.
    const history = (await handle.fetchHistory()).events!;
    const afterCollect = history.find((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === "proposeCandidates")!;
    expect(Number(afterCollect.eventTime!.seconds) * 1000 + Math.floor(afterCollect.eventTime!.nanos! / 1e6)).toBeGreaterThan(killedAt);
    const collect = await collected();
    expect(collect).toHaveLength(train.length);
    expect(new Set(collect.map((r) => r.taskId))).toEqual(new Set(train));
    expect(await db.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "validate" })).toHaveLength(validation.length * (1 + (result.search?.finalists.length ?? 0)));
    // Agent runs, not rows: every rollout of the cycle ran once, plus the probe run before collect (not stored).
    expect(modelCalls(calls)).toBe((await db.store.rollouts.countForCycle(handle.workflowId)) + 1);
    // The fake model and the seeded optimizer decide the same on every run: on this subset no candidate clears the gate.
    expect(result.outcome).toBe("kept");
    expect((await db.store.resources.listVersions("post-analyzer")).map((v) => v.version)).toEqual([1]);
    expect((await db.store.cycles.get(handle.workflowId)).outcome).toBe("kept");
  } finally {
    await worker.stop();
    await connection.close();
    await db.close();
    await server.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}, 120_000);

import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { WorkflowFailedError } from "@temporalio/client";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { startCycle } from "../../runtime/cycles.ts";
import type { RunningWorker } from "../../runtime/worker.ts";
import { importSubset } from "../support/datasets.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, startTestWorker, testConfig } from "../support/temporal.ts";

const PYTHON = fileURLToPath(new URL("../../.venv/bin/python", import.meta.url));
const FAKE_OPTIMIZER = fileURLToPath(new URL("../fixtures/cycle_optimizer.py", import.meta.url));

describe("the Python optimizer failing mid-cycle (real subprocesses, real dev server)", () => {
  let db: TestStore;
  let worker: RunningWorker | undefined;
  let temporal: Awaited<ReturnType<typeof connectClient>> | undefined;
  beforeEach(async () => {
    db = await openTestStore("pglite");
    await importSubset(db.store, "small", 24, 8);
  });
  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
    await temporal?.close();
    await db.close();
  });

  async function runCycle(optimizerArgs: string[], optimizer: { timeoutMinutes?: number } = {}) {
    const config = testConfig({ optimizer: { command: [PYTHON, FAKE_OPTIMIZER, ...optimizerArgs], timeoutMinutes: optimizer.timeoutMinutes ?? 1 } });
    temporal = await connectClient(config);
    worker = await startTestWorker(config, db.store);
    const handle = await startCycle({
      config,
      store: db.store,
      client: temporal.client,
      agent: "post-analyzer",
      dataset: "small",
      settings: { heartbeatTimeoutSeconds: 5, optimizer: { ...config.optimizer, ...optimizer, timeoutMinutes: optimizer.timeoutMinutes ?? 1 } },
    });
    return handle;
  }

  async function expectNothingPublished(cycleId: string, cause: RegExp) {
    const cycle = await db.store.cycles.get(cycleId);
    expect(cycle.outcome).toBe("failed");
    expect(cycle.outcomeDetail).toMatch(cause);
    expect((await db.store.resources.listVersions("post-analyzer")).map((v) => v.version)).toEqual([1]);
    expect((await db.store.resources.getByLabel("post-analyzer", "production")).version).toBe(1);
    expect(await db.store.cycles.leaseHolder("post-analyzer")).toBeUndefined();
    // The cycle's rollouts are kept: they are evidence, and a later cycle can learn from them.
    expect(await db.store.rollouts.countForCycle(cycleId)).toBe(24);
  }

  test("a child that crashes every time: retried, then the cycle fails naming the crash; nothing is published", async () => {
    const handle = await runCycle(["crash"]);
    const failure = await handle.result().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(String((failure as WorkflowFailedError).cause?.cause)).toMatch(/optimizer crashed \(exit code 1\)[\s\S]*fake optimizer crash/);
    await expectNothingPublished(handle.workflowId, /Optimizer\.crashed/);
    const history = await handle.fetchHistory();
    const attempts = history.events!.filter((event) => event.activityTaskStartedEventAttributes).length;
    expect(attempts).toBeGreaterThanOrEqual(3);
  });

  test("a child that hangs past its timeout is killed, retried, and the cycle fails naming the timeout", async () => {
    const handle = await runCycle(["hang"], { timeoutMinutes: 0.05 });
    await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
    await expectNothingPublished(handle.workflowId, /Optimizer\.timed-out: The optimizer ran longer than 3 s and was killed/);
  });

  test("output that breaks the contract fails the cycle at once, without retries", async () => {
    const handle = await runCycle(["bad-output"]);
    await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
    await expectNothingPublished(handle.workflowId, /Optimizer\.contract: The optimizer's response breaks contract v3/);
    const history = await handle.fetchHistory();
    expect(history.events!.filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === "proposeCandidates")).toHaveLength(1);
  });

  test("a child that crashes once is retried and the cycle completes with at most one new version", async () => {
    const calls = mkdtempSync(join(tmpdir(), "agl-calls-"));
    const handle = await runCycle(["crash-once", calls]);
    const result = await handle.result();
    expect(readFileSync(join(calls, "calls"), "utf8")).toBe("2");
    const versions = (await db.store.resources.listVersions("post-analyzer")).map((v) => v.version);
    expect(result.outcome).toBe("kept");
    expect(versions).toEqual([1]);
  });

  test("killing the child with SIGKILL mid-run: the retry finishes the cycle, nothing doubled", async () => {
    const calls = mkdtempSync(join(tmpdir(), "agl-calls-"));
    const handle = await runCycle(["slow-once", calls]);
    const pidFile = join(calls, "pid");
    for (let tries = 0; !existsSync(pidFile); tries++) {
      expect(tries, "the optimizer never started").toBeLessThan(300);
      await sleep(100);
    }
    process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL");
    const result = await handle.result();
    expect(readFileSync(join(calls, "calls"), "utf8")).toBe("2");
    expect((await db.store.cycles.candidates(handle.workflowId)).length).toBeGreaterThan(0);
    expect(await db.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "validate" })).toHaveLength(8 * (1 + (result.search?.finalists.length ?? 0)));
    expect(result.outcome).toBe("kept");
    expect((await db.store.resources.listVersions("post-analyzer")).map((v) => v.version)).toEqual([1]);
  });
});

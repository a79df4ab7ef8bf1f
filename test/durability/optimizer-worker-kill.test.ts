import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { ResultPromise } from "execa";
import { afterEach, expect, test } from "vitest";
import { startCycle } from "../../runtime/cycles.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, testConfig } from "../support/temporal.ts";
import { killWorkers, spawnWorker } from "../support/worker-process.ts";

const PYTHON = fileURLToPath(new URL("../../.venv/bin/python", import.meta.url));
const FAKE_OPTIMIZER = fileURLToPath(new URL("../fixtures/cycle_optimizer.py", import.meta.url));

let db: TestStore | undefined;
const children: ResultPromise[] = [];
let optimizerPid: number | undefined;

afterEach(async () => {
  if (optimizerPid !== undefined && isRunning(optimizerPid)) process.kill(optimizerPid, "SIGKILL");
  optimizerPid = undefined;
  await killWorkers(children);
  await db?.close();
});

/** A zombie nobody reaps (pid 1 in a container may not) is dead too: read the state, not just the pid. */
function isRunning(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

test("killing the worker while the Python optimizer runs: the child dies with it, and the retry on a new worker proposes exactly once more", async () => {
  db = await openTestStore("pglite");
  const calls = mkdtempSync(join(tmpdir(), "agl-calls-"));
  const optimizer = { command: [PYTHON, FAKE_OPTIMIZER, "block-once", calls] };
  const config = testConfig({ optimizer });
  const overrides = { dataDir: config.dataDir, temporal: { address: config.temporal.address, taskQueue: config.temporal.taskQueue }, model: { provider: "fake" }, optimizer };
  const temporal = await connectClient(config);
  try {
    const { child: first } = await spawnWorker(children, overrides, db.connection, 0);
    const handle = await startCycle({
      config,
      store: db.store,
      client: temporal.client,
      agent: "post-analyzer",
      // The whole bundled set: the fake model's cycle deploys on it every time (on 24/8 and 40/12 subsets it keeps v1).
      dataset: "posts",
      settings: { heartbeatTimeoutSeconds: 2 },
    });
    // The fixture blocks until told, so the kill lands while the child runs, however loaded the machine.
    const pidFile = join(calls, "pid");
    for (let tries = 0; !existsSync(pidFile); tries++) {
      expect(tries, "the optimizer never started").toBeLessThan(1200);
      await sleep(100);
    }
    optimizerPid = Number(readFileSync(pidFile, "utf8"));
    expect(isRunning(optimizerPid)).toBe(true);
    first.kill("SIGKILL");
    await first;
    for (let tries = 0; isRunning(optimizerPid); tries++) {
      expect(tries, `the optimizer child ${optimizerPid} outlived its killed worker: orphaned`).toBeLessThan(100);
      await sleep(50);
    }
    // Were it still alive, this would let it write a response the retry then reuses: the invocation count would show it.
    writeFileSync(join(calls, "go"), "");

    await spawnWorker(children, overrides, db.connection, 0);
    const result = await handle.result();

    expect(readFileSync(join(calls, "invocations"), "utf8").trim().split("\n")).toHaveLength(2);
    const events = (await handle.fetchHistory()).events!;
    const proposeIds = events
      .filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === "proposeCandidates")
      .map((event) => String(event.eventId));
    expect(proposeIds).toHaveLength(1);
    const started = events.filter((event) => proposeIds.includes(String(event.activityTaskStartedEventAttributes?.scheduledEventId)));
    expect(started.map((event) => event.activityTaskStartedEventAttributes!.attempt)).toEqual([2]);
    expect(events.filter((event) => proposeIds.includes(String(event.activityTaskCompletedEventAttributes?.scheduledEventId)))).toHaveLength(1);

    expect(result.outcome).toBe("deployed");
    expect((await db.store.resources.listVersions("post-analyzer")).map((v) => v.version)).toEqual([1, 2]);
    expect((await db.store.cycles.get(handle.workflowId)).outcome).toBe("deployed");
  } finally {
    await temporal.close();
  }
});

import { afterEach, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { endCanary } from "../../runtime/canaries.ts";
import { startCycle } from "../../runtime/cycles.ts";
import type { RunningWorker } from "../../runtime/worker.ts";
import type { CanaryGuardResult } from "../../workflows/types.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, startTestWorker, testConfig } from "../support/temporal.ts";

let db: TestStore | undefined;
let worker: RunningWorker | undefined;

afterEach(async () => {
  await worker?.stop();
  await db?.close();
});

test('cycle.deploy "canary": the winner goes onto the canary label under a guard that outlives the cycle; a person aborting it ends the guard', async () => {
  db = await openTestStore("pglite");
  const config = testConfig({ cycle: { deploy: "canary", canaryWeight: 20 }, guard: { maxDuration: "1h", heartbeatTimeoutSeconds: 2 } });
  const temporal = await connectClient(config);
  worker = await startTestWorker(config, db.store);
  try {
    const result = await (await startCycle({ config, store: db.store, client: temporal.client, agent: postAnalyzer.id, dataset: "posts" })).result();
    expect(result).toMatchObject({ outcome: "deployed", incumbentVersion: 1, deployedVersion: 2, canary: { id: `can-${result.cycleId}`, weight: 20 } });
    expect(result.detail).toMatch(new RegExp(`^deployed v2 as a canary at 20% of keyed traffic, guarded by can-${result.cycleId} \\(production stays v1 until the guard promotes it\\): `));
    const labels = await db.store.resources.labelled(postAnalyzer.prompt.resource);
    expect(labels.map((entry) => [entry.label, entry.version.version, entry.weight])).toEqual([
      ["canary", 2, 20],
      ["production", 1, null],
    ]);
    const guard = temporal.client.workflow.getHandle(result.canary!.id);
    expect((await guard.describe()).status.name).toBe("RUNNING");

    const aborted = await endCanary({ store: db.store, config, agent: postAnalyzer.id, outcome: "rolled_back", actor: "user:ops", reason: "a customer complained" });
    expect(aborted.event).toMatchObject({ kind: "canary_rolled_back", label: "canary", fromVersion: 2, toVersion: null, actor: "user:ops", reason: "a customer complained" });
    // The guard notices at its next wait and ends with the person's decision.
    expect((await guard.result()) as CanaryGuardResult).toMatchObject({ outcome: "rolled_back", decidedBy: "user:ops", reason: "a customer complained" });
    expect((await db.store.resources.labelled(postAnalyzer.prompt.resource)).map((entry) => entry.label)).toEqual(["production"]);
    await expect(endCanary({ store: db.store, config, agent: postAnalyzer.id, outcome: "promoted", actor: "user:ops" })).rejects.toThrow(
      'Agent "post-analyzer" has no running canary (start one with agl deploy --agent post-analyzer --version N --canary 10%).',
    );
  } finally {
    await temporal.close();
  }
});

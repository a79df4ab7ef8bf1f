import type { ResultPromise } from "execa";
import { afterEach, describe, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { guardActor } from "../../activities/canary-activities.ts";
import { startCanary } from "../../runtime/canaries.ts";
import type { RunningHttpServer } from "../../server/app.ts";
import type { PromptContent } from "../../store/schema.ts";
import { type CanaryGuardResult, type CanaryGuardState, GUARD_STATE_QUERY } from "../../workflows/types.ts";
import { scratchDirs, startApiServer } from "../resources/support.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, startTestWorker, testConfig } from "../support/temporal.ts";
import { killWorkers, spawnWorker } from "../support/worker-process.ts";
import { GOOD_PROMPT, liveTraffic, WORSE_PROMPT } from "./traffic.ts";

const NAME = postAnalyzer.prompt.resource;
const GUARD = { minRollouts: 20, lookEvery: 10, alpha: 0.05, maxDuration: "1h", judgeSampleRate: 0.25, heartbeatTimeoutSeconds: 2 };
/** The traffic a guard gets at most before the test gives up on it: 200 requests at 50 %, about 100 per arm. */
const TRAFFIC_LIMIT = 200;

let db: TestStore | undefined;
let server: RunningHttpServer | undefined;
const children: ResultPromise[] = [];
const scratch = scratchDirs("agl-guard-e2e-");

afterEach(async () => {
  await killWorkers(children);
  await server?.close();
  await db?.close();
  scratch.removeAll();
});

/** v1 is the seed; `production` then points at `productionVersion` of [seed, ...published]. */
async function publish(store: TestStore["store"], versions: PromptContent[], productionVersion: number): Promise<void> {
  await store.resources.publish({ name: NAME, content: postAnalyzer.prompt.seed, parentVersion: null, createdBy: "test", labels: [{ label: "production", expectedVersion: null }] });
  for (const [index, content] of versions.entries()) await store.resources.publish({ name: NAME, content, parentVersion: index + 1, createdBy: "test" });
  if (productionVersion !== 1) await store.resources.moveLabel({ name: NAME, label: "production", toVersion: productionVersion, actor: "test" });
}

/**
 * Live traffic through the real server and client against a guarded canary, with the guard's worker
 * killed (SIGKILL) while it waits for evidence and a new one started: the guard decides by itself.
 */
async function guardedCanary(options: { versions: PromptContent[]; production: number; canary: number }) {
  db = await openTestStore("pglite");
  await publish(db.store, options.versions, options.production);
  server = await startApiServer(db.store);
  const config = testConfig({ guard: GUARD });
  const overrides = { dataDir: config.dataDir, temporal: { address: config.temporal.address, taskQueue: config.temporal.taskQueue }, model: { provider: "fake" } };
  const temporal = await connectClient(config);
  const traffic = liveTraffic(server.url, scratch.make());
  try {
    const { child: first } = await spawnWorker(children, overrides, db.connection, 0);
    const { canary } = await startCanary({ config, store: db.store, client: temporal.client, agent: postAnalyzer.id, version: options.canary, weight: 50, actor: "user:e2e" });
    const handle = temporal.client.workflow.getHandle(canary.id);
    // Less than minRollouts per arm: the guard is still waiting for evidence when its worker dies.
    await traffic.send(16);
    await expect
      .poll(async () => (await handle.describe()).raw.pendingActivities?.some((activity) => activity.activityType?.name === "awaitCanaryEvidence" && activity.state === 2), { timeout: 20_000 })
      .toBe(true);
    first.kill("SIGKILL");
    await first.catch(() => undefined);
    await spawnWorker(children, overrides, db.connection, 0);
    // Each batch, then until the guard has looked at everything it is due to look at: every look sees
    // exactly the traffic sent before it, so the outcome does not depend on how fast the machine is.
    const settled = async () => {
      const current = await db!.store.canaries.get(canary.id);
      if (current.status !== "running") return true;
      const state = await handle.query<CanaryGuardState>(GUARD_STATE_QUERY);
      return state.nextLookAt > (await db!.store.canaries.canaryRollouts(current));
    };
    while ((await db.store.canaries.get(canary.id)).status === "running") {
      await expect.poll(settled, { timeout: 60_000, interval: 100 }).toBe(true);
      if ((await db.store.canaries.get(canary.id)).status !== "running") break;
      expect(traffic.sent, "the guard did not decide within the traffic limit").toBeLessThan(TRAFFIC_LIMIT);
      await traffic.send(10);
    }
    const result = (await handle.result()) as CanaryGuardResult;
    // Within the configured rollouts: the decision came at the first look that had minRollouts per arm, or the next.
    const decidedOn = (await db.store.canaries.get(canary.id)).state as { arms: Record<string, { rollouts: number }> };
    expect(decidedOn.arms.canary!.rollouts).toBeLessThanOrEqual(GUARD.minRollouts + GUARD.lookEvery);
    console.log(`after ${traffic.sent} requests: ${result.outcome} by ${result.decidedBy}: ${result.reason}`);
    return { canary: await db.store.canaries.get(canary.id), result, traffic, events: await db.store.resources.events(NAME) };
  } finally {
    await traffic.close();
    await temporal.close();
  }
}

describe("a guarded canary decides by itself from live traffic, whatever happens to its worker", () => {
  test("a worse canary is rolled back: the canary label goes, production stays, one audited decision with its numbers", async () => {
    const { canary, result, traffic, events } = await guardedCanary({ versions: [GOOD_PROMPT, WORSE_PROMPT], production: 2, canary: 3 });
    expect(canary).toMatchObject({ status: "rolled_back", baselineVersion: 2, canaryVersion: 3, decidedBy: guardActor(canary.id) });
    expect(result).toMatchObject({ canaryId: canary.id, outcome: "rolled_back", decidedBy: guardActor(canary.id) });
    expect(canary.decisionReason).toMatch(new RegExp(`^guard ${canary.id}, look \\d+: reward: canary -?\\d\\.\\d{3} \\[.*\\] \\(n=\\d+\\) vs production .* below 0 \\(mSPRT \\(normal-mixture confidence sequence\\), alpha 0\\.05\\)$`));
    const labels = await db!.store.resources.labelled(NAME);
    expect(labels.map((entry) => [entry.label, entry.version.version])).toEqual([["production", 2]]);
    // The audit trail, oldest first: the start by the person, the rollback by the guard.
    const canaryEvents = events.filter((event) => event.kind.startsWith("canary_")).reverse();
    expect(canaryEvents.map((event) => [event.kind, event.label, event.fromVersion, event.toVersion, event.actor])).toEqual([
      ["canary_started", "canary", null, 3, "user:e2e"],
      ["canary_rolled_back", "canary", 3, null, guardActor(canary.id)],
    ]);
    expect(canaryEvents[1]!.reason).toBe(canary.decisionReason);
    // Both arms served, each its own version, every rollout recording the version and arm it ran.
    expect(new Set(traffic.served.map((served) => `${served.arm}:${served.version}`))).toEqual(new Set(["production:2", "canary:3"]));
    const stored = await db!.store.db.selectFrom("rollouts").select(["arm", "resource_version"]).where("source", "=", "otlp").execute();
    expect(stored).toHaveLength(traffic.sent);
    expect(stored.every((row) => (row.arm === "canary" && row.resource_version === 3) || (row.arm === "production" && row.resource_version === 2))).toBe(true);
    expect(canary.state).toMatchObject({ decision: "rollback", test: "mSPRT (normal-mixture confidence sequence)", arms: { canary: { version: 3 }, production: { version: 2 } } });
  });

  test("a better canary is promoted: production moves to it and the canary label goes, one audited decision with its numbers", async () => {
    const { canary, result, events } = await guardedCanary({ versions: [GOOD_PROMPT], production: 1, canary: 2 });
    expect(canary).toMatchObject({ status: "promoted", baselineVersion: 1, canaryVersion: 2, decidedBy: guardActor(canary.id) });
    expect(result).toMatchObject({ outcome: "promoted", decidedBy: guardActor(canary.id) });
    expect(canary.decisionReason).toMatch(/look \d+: reward: canary .* above 0 \(mSPRT/);
    const labels = await db!.store.resources.labelled(NAME);
    expect(labels.map((entry) => [entry.label, entry.version.version])).toEqual([["production", 2]]);
    const canaryEvents = events.filter((event) => event.kind.startsWith("canary_")).reverse();
    expect(canaryEvents.map((event) => [event.kind, event.label, event.fromVersion, event.toVersion, event.actor])).toEqual([
      ["canary_started", "canary", null, 2, "user:e2e"],
      ["canary_promoted", "production", 1, 2, guardActor(canary.id)],
    ]);
  });
});

describe("maxDuration", () => {
  test("ends a canary that never got enough traffic: rolled back by its timer, production unchanged", async () => {
    db = await openTestStore("pglite");
    await publish(db.store, [GOOD_PROMPT], 1);
    const config = testConfig({ guard: { ...GUARD, maxDuration: "2s" } });
    const temporal = await connectClient(config);
    const worker = await startTestWorker(config, db.store);
    try {
      const { canary } = await startCanary({ config, store: db.store, client: temporal.client, agent: postAnalyzer.id, version: 2, weight: 10, actor: "user:e2e" });
      const result = (await temporal.client.workflow.getHandle(canary.id).result()) as CanaryGuardResult;
      expect(result).toMatchObject({ outcome: "rolled_back", decidedBy: guardActor(canary.id) });
      expect(result.reason).toMatch(new RegExp(`^maxDuration \\(2 s\\) reached without a decision, production stays; guard ${canary.id}, look 1: waiting for 20 rewarded rollouts per arm: production 0, canary 0$`));
      expect((await db.store.resources.labelled(NAME)).map((entry) => [entry.label, entry.version.version])).toEqual([["production", 1]]);
    } finally {
      await worker.stop();
      await temporal.close();
    }
  });
});

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { BACKENDS, openTestStore, type TestStore } from "../support/stores.ts";
import { RUNNING_CYCLE, type Seeded, seedDashboard } from "./seed.ts";

describe.each(BACKENDS)("the dashboard's store reads (%s)", (backend) => {
  let handle: TestStore;
  let seeded: Seeded;
  beforeAll(async () => {
    handle = await openTestStore(backend);
    seeded = await seedDashboard(handle.store);
  });
  afterAll(async () => {
    await handle?.close();
  });

  const search = (filter: Omit<Parameters<TestStore["store"]["dashboard"]["searchRollouts"]>[0], "agent" | "limit"> & { limit?: number }) =>
    handle.store.dashboard.searchRollouts({ agent: seeded.agent, limit: 500, ...filter });
  const meanReward = (rewards: { scorer: string; value: number }[], scorer?: string) => {
    const counted = rewards.filter((reward) => scorer === undefined || reward.scorer === scorer);
    return counted.reduce((sum, reward) => sum + reward.value, 0) / counted.length;
  };

  test("rollouts filter by version, source, scorer and reward range, newest first, with their rewards", async () => {
    const everything = await search({});
    expect(everything).toHaveLength(seeded.rollouts);
    const times = everything.map((rollout) => rollout.createdAt.getTime());
    expect(times).toEqual([...times].sort((a, b) => b - a));

    const v3 = await search({ version: 3 });
    expect(v3.length).toBeGreaterThan(0);
    expect(v3.every((rollout) => rollout.resourceVersion === 3)).toBe(true);
    expect(v3.length).toBe(everything.filter((rollout) => rollout.resourceVersion === 3).length);

    const traffic = await search({ source: "otlp" });
    expect(traffic.map((rollout) => rollout.id).sort()).toEqual(["ro-otlp-0", "ro-otlp-1", "ro-otlp-2", "ro-otlp-3", "ro-otlp-4", "ro-otlp-5"]);
    expect(traffic[0]!.rewards).toEqual([expect.objectContaining({ scorer: "proxy:thumbs", value: 1, reason: "user gave a thumbs up" })]);

    const thumbsDown = await search({ scorer: "proxy:thumbs", maxReward: 0.5 });
    expect(thumbsDown.map((rollout) => rollout.id)).toEqual(["ro-otlp-2"]);

    const halfRight = await search({ scorer: "ground-truth", minReward: 0.5, maxReward: 0.5 });
    expect(halfRight.length).toBeGreaterThan(0);
    expect(halfRight.every((rollout) => meanReward(rollout.rewards, "ground-truth") === 0.5)).toBe(true);
    expect(halfRight.length).toBe(everything.filter((rollout) => rollout.rewards.some((r) => r.scorer === "ground-truth") && meanReward(rollout.rewards, "ground-truth") === 0.5).length);

    const newest = await search({ limit: 3 });
    expect(newest.map((rollout) => rollout.id)).toEqual(everything.slice(0, 3).map((rollout) => rollout.id));
  });

  test("phase spans: each cycle's first and last rollout per phase", async () => {
    const cycles = await handle.store.cycles.list({ agent: seeded.agent });
    const spans = await handle.store.dashboard.phaseSpans(cycles.map((cycle) => cycle.id));
    const first = spans.filter((span) => span.cycleId === seeded.scoredCycles[0]);
    expect(first.map((span) => [span.phase, span.rollouts])).toEqual([
      ["collect", 12],
      ["validate", 16],
    ]);
    const [collect, validate] = first;
    expect(collect!.lastAt.getTime() - collect!.firstAt.getTime()).toBe(11 * 3_000);
    expect(validate!.firstAt.getTime()).toBeGreaterThan(collect!.lastAt.getTime());
    expect(spans.some((span) => span.cycleId === RUNNING_CYCLE)).toBe(false);
    expect(await handle.store.dashboard.phaseSpans([])).toEqual([]);
  });

  test("the pulse stays put while nothing changes and moves with every change the page shows", async () => {
    const { store } = handle;
    const pulse = () => store.dashboard.pulse(seeded.agent);
    let last = await pulse();
    expect(await pulse()).toBe(last);
    const changed = async (what: string) => {
      const now = await pulse();
      expect(now, what).not.toBe(last);
      last = now;
    };

    await store.resources.moveLabel({ name: seeded.resource, label: "staging", toVersion: 2, actor: "test" });
    await changed("a label move");
    await store.rollouts.addRewards([{ rolloutId: "ro-otlp-0", scorer: "feedback", value: 0.5, reason: "a second opinion", details: {}, dedupeKey: "" }]);
    await changed("a reward");
    await store.cycles.update(RUNNING_CYCLE, { progress: { phase: "collect", progress: { done: 6, total: 12 } } });
    await changed("a running cycle's progress");
    await store.cycles.update(RUNNING_CYCLE, { phase: "done", outcome: "kept", outcomeDetail: "test", finished: true });
    await changed("a cycle finishing");
    await store.cycles.create({ id: "cy-post-analyzer-manual-5", agent: seeded.agent, dataset: "posts", trigger: "manual" });
    await changed("a cycle starting");
    const [template] = await store.rollouts.getMany(["ro-otlp-0"]);
    await store.rollouts.insertMany([{ ...template!, id: "ro-otlp-new" }]);
    await changed("a rollout of the agent");
    expect(await pulse()).toBe(last);
  });
});

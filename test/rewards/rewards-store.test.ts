import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createCycleActivities } from "../../activities/cycle-activities.ts";
import { addMissingRewards, expectedOf } from "../../activities/rewarding.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { loadConfig } from "../../config/load.ts";
import { fakeJudgeModel } from "../../scorers/fake-judge-model.ts";
import { recordFeedback } from "../../scorers/human-feedback.ts";
import { recordOutcome } from "../../scorers/proxy-metrics.ts";
import { computedScorer, scoringPlan } from "../../scorers/registry.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "../../store/errors.ts";
import type { Store } from "../../store/index.ts";
import type { NewRollout } from "../../store/rollouts.ts";
import { tQuantile } from "../../stats/intervals.ts";
import { BACKENDS, openTestStore, type TestStore } from "../support/stores.ts";

const groundTruth = computedScorer(scoringPlan(postAnalyzer, undefined), postAnalyzer, "ground-truth");
const context = { judgeModel: fakeJudgeModel };

const EXPECTED: Record<string, { category: string; sentiment: string }> = {
  t1: { category: "startups", sentiment: "positive" },
  t2: { category: "technology", sentiment: "negative" },
  t3: { category: "general", sentiment: "neutral" },
  t4: { category: "startups", sentiment: "negative" },
};

function rollout(id: string, fields: Partial<NewRollout>): NewRollout {
  return {
    id,
    agent: postAnalyzer.id,
    source: "queue",
    dataset: "analysis",
    taskId: null,
    resourceName: postAnalyzer.prompt.resource,
    resourceVersion: 1,
    candidateId: null,
    cycleId: null,
    phase: null,
    input: { content: `post ${id}` },
    output: null,
    status: "succeeded",
    error: null,
    latencyMs: 10,
    model: "fake/fake-keyword",
    inputTokens: null,
    outputTokens: null,
    traceId: null,
    ...fields,
  };
}

/** Sample standard deviation, computed here independently of the SQL aggregate. */
function sd(values: number[]): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1));
}

describe.each(BACKENDS)("rewards and analysis on %s", (backend) => {
  let handle: TestStore;
  let store: Store;

  beforeAll(async () => {
    handle = await openTestStore(backend);
    store = handle.store;
    await store.datasets.importTasks({
      name: "analysis",
      agent: postAnalyzer.id,
      source: "test",
      tasks: Object.entries(EXPECTED).map(([id, expected]) => ({ id, input: { content: `post ${id}` }, expected, split: "train" as const })),
    });
    await store.rollouts.insertMany([
      rollout("ro-v1-t1", { taskId: "t1", output: EXPECTED.t1!, latencyMs: 10, inputTokens: 3, outputTokens: 2 }),
      rollout("ro-v1-t2", { taskId: "t2", output: { category: "technology", sentiment: "neutral" }, latencyMs: 20, inputTokens: 6, outputTokens: 4 }),
      rollout("ro-v1-t3", { taskId: "t3", output: { category: "startups", sentiment: "positive" }, latencyMs: 30, inputTokens: 10, outputTokens: 5 }),
      rollout("ro-v1-t4", { taskId: "t4", status: "failed", error: "model timed out", latencyMs: 40 }),
      rollout("ro-v2-t1", { taskId: "t1", resourceVersion: 2, output: EXPECTED.t1! }),
      rollout("ro-v2-t2", { taskId: "t2", resourceVersion: 2, output: EXPECTED.t2! }),
      // A cycle candidate's rollout is no prompt version's: analysis leaves it out.
      rollout("ro-cand-t1", { taskId: "t1", resourceVersion: null, candidateId: "c1", cycleId: "cy-x", phase: "search", output: EXPECTED.t1! }),
      // A trace without prompt metadata: no version, no data set, the same trace id on two rollouts.
      rollout("ro-otlp-1", { source: "otlp", dataset: null, resourceVersion: null, output: EXPECTED.t1!, traceId: "trace-a" }),
      rollout("ro-otlp-2", { source: "otlp", dataset: null, resourceVersion: null, output: EXPECTED.t2!, traceId: "trace-a" }),
    ]);
  });
  afterAll(async () => {
    await handle?.close();
  });

  test("computed rewards are added once: a second run adds nothing; rollouts without ground truth are not scorable by it", async () => {
    const rollouts = await store.rollouts.getMany(["ro-v1-t1", "ro-v1-t2", "ro-v1-t3", "ro-v1-t4", "ro-v2-t1", "ro-v2-t2", "ro-otlp-1"]);
    const first = await addMissingRewards(store, rollouts, [groundTruth], { expected: await expectedOf(store, rollouts), context, concurrency: 3 });
    expect(first.counts).toEqual({ scored: 6, alreadyScored: 0, notScorable: 1, failed: 0 });
    const again = await store.rollouts.getMany(rollouts.map((r) => r.id));
    const second = await addMissingRewards(store, again, [groundTruth], { expected: await expectedOf(store, again), context, concurrency: 3 });
    expect(second.counts).toEqual({ scored: 0, alreadyScored: 6, notScorable: 1, failed: 0 });
    // Even a stale read (rewards not loaded) doubles nothing: the store is idempotent per (rollout, scorer, "").
    const stale = await addMissingRewards(store, rollouts, [groundTruth], { expected: await expectedOf(store, rollouts), context, concurrency: 3 });
    expect(stale.counts.scored).toBe(0);
    const values = Object.fromEntries((await store.rollouts.getMany(rollouts.map((r) => r.id))).map((r) => [r.id, r.rewards.map((w) => w.value)]));
    expect(values).toEqual({ "ro-v1-t1": [1], "ro-v1-t2": [0], "ro-v1-t3": [-1], "ro-v1-t4": [-1], "ro-v2-t1": [1], "ro-v2-t2": [1], "ro-otlp-1": [] });
  });

  test("feedback: unknown rollout is refused; a resend with the same feedbackId changes nothing; the same id with another verdict conflicts", async () => {
    await expect(recordFeedback(store, { rolloutId: "ro-nope", rating: 4 })).rejects.toThrow(NotFoundError);
    const first = await recordFeedback(store, { rolloutId: "ro-v1-t1", rating: 5, comment: "spot on", user: "ana", feedbackId: "fb-1" });
    expect(first.created).toBe(true);
    expect(first.reward).toMatchObject({ scorer: "human", value: 1, reason: 'rated 5/5 by ana: "spot on"', dedupeKey: "fb-1", details: { rating: 5, comment: "spot on", user: "ana" } });
    const resend = await recordFeedback(store, { rolloutId: "ro-v1-t1", rating: 5, comment: "spot on", user: "ana", feedbackId: "fb-1" });
    expect(resend).toEqual({ created: false, reward: first.reward });
    await expect(recordFeedback(store, { rolloutId: "ro-v1-t1", rating: 1, feedbackId: "fb-1" })).rejects.toThrow(ConflictError);
    // Without an id every post is a verdict of its own.
    const second = await recordFeedback(store, { rolloutId: "ro-v1-t1", rating: 3 });
    expect(second.created).toBe(true);
    expect(second.reward.dedupeKey).toMatch(/^fb-/);
    const human = (await store.rollouts.get("ro-v1-t1")).rewards.filter((r) => r.scorer === "human");
    expect(human.map((r) => r.value).sort()).toEqual([0, 1]);
  });

  test("outcomes: mapped by rewards.proxy, by rollout or by trace, idempotent on outcomeId; unknown event or trace stores nothing", async () => {
    const mapping = { engaged: 0.5, bounced: -1 };
    const count = async () => (await store.rollouts.getMany(["ro-v2-t1", "ro-otlp-1", "ro-otlp-2"])).flatMap((r) => r.rewards).filter((r) => r.scorer.startsWith("proxy:")).length;
    await expect(recordOutcome(store, mapping, { rolloutId: "ro-v2-t1", event: "purchased" })).rejects.toThrow(/Unknown event "purchased": configured events are engaged, bounced/);
    await expect(recordOutcome(store, mapping, { rolloutId: "ro-v2-t1", event: "toString" })).rejects.toThrow(InvalidInputError);
    await expect(recordOutcome(store, mapping, { traceId: "trace-none", event: "engaged" })).rejects.toThrow(NotFoundError);
    await expect(recordOutcome(store, mapping, { rolloutId: "ro-nope", event: "engaged" })).rejects.toThrow(NotFoundError);
    expect(await count()).toBe(0);

    const byRollout = await recordOutcome(store, mapping, { rolloutId: "ro-v2-t1", event: "engaged", value: 42, occurredAt: "2026-11-25T13:00:00+01:00", outcomeId: "oc-1" });
    expect(byRollout.created).toBe(1);
    expect(byRollout.rewards[0]).toMatchObject({
      scorer: "proxy:engaged",
      value: 0.5,
      reason: 'outcome "engaged" (value 42) at 2026-11-25T12:00:00.000Z: reward 0.5 by rewards.proxy',
      details: { event: "engaged", value: 42, occurredAt: "2026-11-25T12:00:00.000Z" },
    });
    expect((await recordOutcome(store, mapping, { rolloutId: "ro-v2-t1", event: "engaged", value: 42, outcomeId: "oc-1" })).created).toBe(0);

    const byTrace = await recordOutcome(store, mapping, { traceId: "trace-a", event: "bounced", outcomeId: "oc-2" });
    expect(byTrace.created).toBe(2);
    expect(byTrace.rewards.map((r) => [r.rolloutId, r.value])).toEqual([
      ["ro-otlp-1", -1],
      ["ro-otlp-2", -1],
    ]);
    expect((await recordOutcome(store, mapping, { traceId: "trace-a", event: "bounced", outcomeId: "oc-2" })).created).toBe(0);
    expect(await count()).toBe(3);
  });

  test("analysis per version: counts, mean reward with Student's t interval, accuracy and confusion against ground truth, percentiles", async () => {
    const analysis = await store.analysis.analyze({ agent: postAnalyzer.id, weights: { "ground-truth": 1 }, labels: postAnalyzer.labels });
    expect(analysis.versions.map((v) => [v.version, v.rollouts, v.failed])).toEqual([
      [1, 4, 1],
      [2, 2, 0],
      [null, 2, 0],
    ]);
    const [v1, v2, none] = analysis.versions;
    const v1Rewards = [1, 0, -1, -1];
    const half = (tQuantile(0.975, 3) * sd(v1Rewards)) / Math.sqrt(4);
    expect(v1!.reward!.n).toBe(4);
    expect(v1!.reward!.mean).toBeCloseTo(-0.25, 10);
    expect(v1!.reward!.low).toBeCloseTo(-0.25 - half, 10);
    expect(v1!.reward!.high).toBeCloseTo(-0.25 + half, 10);
    expect(v2!.reward).toEqual({ n: 2, mean: 1, low: 1, high: 1 });
    expect(none!.reward).toBeNull();
    expect(none!.fieldAccuracy).toEqual({});

    expect(v1!.confusion).toEqual({
      category: { expected: ["technology", "startups", "general"], actual: ["technology", "startups", "general", "(failed)"], counts: [[1, 0, 0, 0], [0, 1, 0, 1], [0, 1, 0, 0]] },
      sentiment: { expected: ["positive", "neutral", "negative"], actual: ["positive", "neutral", "negative", "(failed)"], counts: [[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 1]] },
    });
    expect(v1!.fieldAccuracy).toEqual({ category: { right: 2, total: 4, accuracy: 0.5 }, sentiment: { right: 1, total: 4, accuracy: 0.25 } });
    expect(v2!.fieldAccuracy).toEqual({ category: { right: 2, total: 2, accuracy: 1 }, sentiment: { right: 2, total: 2, accuracy: 1 } });

    // percentile_cont interpolates: latencies 10, 20, 30, 40; tokens 5, 10, 15 (the failed run recorded none).
    expect(v1!.latencyMs!.p50).toBeCloseTo(25, 10);
    expect(v1!.latencyMs!.p90).toBeCloseTo(37, 10);
    expect(v1!.latencyMs!.p99).toBeCloseTo(39.7, 10);
    expect(v1!.tokens!.p50).toBeCloseTo(10, 10);
    expect(v1!.tokens!.p90).toBeCloseTo(14, 10);
    expect(v1!.tokens!.p99).toBeCloseTo(14.9, 10);
    expect(v2!.tokens).toBeNull();
  });

  test("analysis: a rollout's several ratings are averaged first, then weighted with the other scorers; --since filters", async () => {
    const analysis = await store.analysis.analyze({ agent: postAnalyzer.id, weights: { "ground-truth": 1, human: 1 }, labels: postAnalyzer.labels });
    const v1 = analysis.versions.find((v) => v.version === 1)!;
    // ro-v1-t1 has ground truth 1 and two human ratings (1 and 0): its human mean is 0.5, its reward (1 + 0.5) / 2.
    expect(v1.rewardByScorer.human).toEqual({ n: 1, mean: 0.5, low: null, high: null });
    expect(v1.rewardByScorer["ground-truth"]!.n).toBe(4);
    expect(v1.reward!.mean).toBeCloseTo((0.75 + 0 - 1 - 1) / 4, 10);
    const weighted = await store.analysis.analyze({ agent: postAnalyzer.id, weights: { "ground-truth": 3, human: 1 }, labels: postAnalyzer.labels });
    expect(weighted.versions.find((v) => v.version === 1)!.reward!.mean).toBeCloseTo(((3 * 1 + 0.5) / 4 + 0 - 1 - 1) / 4, 10);
    const proxied = await store.analysis.analyze({ agent: postAnalyzer.id, weights: { proxy: 1 }, labels: {} });
    expect(proxied.versions.find((v) => v.version === null)!.reward).toEqual({ n: 2, mean: -1, low: -1, high: -1 });
    expect(proxied.versions.find((v) => v.version === 2)!.rewardByScorer["proxy:engaged"]).toEqual({ n: 1, mean: 0.5, low: null, high: null });

    const groundTruthOnly = { weights: { "ground-truth": 1 }, labels: {} };
    expect((await store.analysis.analyze({ agent: postAnalyzer.id, ...groundTruthOnly, since: new Date(Date.now() + 60_000) })).versions).toEqual([]);
    expect((await store.analysis.analyze({ agent: postAnalyzer.id, ...groundTruthOnly, since: new Date(Date.now() - 3_600_000) })).versions).toHaveLength(3);
    expect((await store.analysis.analyze({ agent: "nobody", ...groundTruthOnly })).versions).toEqual([]);
  });

  test("a cycle's configured scorers: scoreRollouts adds each computed one, the summary averages them per rollout", async () => {
    const config = loadConfig({ env: {}, agents: [postAnalyzer], overrides: { model: { provider: "fake" }, cycle: { scorers: ["ground-truth", "judge"] } } });
    const activities = createCycleActivities({
      config,
      store,
      scoring: context,
      runnerFor: () => {
        throw new Error("no agent runs here");
      },
      optimizerModel: () => {
        throw new Error("no optimizer here");
      },
    });
    await store.rollouts.insertMany(
      ["t1", "t2", "t3"].map((taskId) => rollout(`ro-cy-${taskId}`, { taskId, cycleId: "cy-scorers", phase: "validate", output: EXPECTED.t1! })),
    );
    expect(await activities.scoreRollouts({ cycleId: "cy-scorers", dataset: "analysis", phase: "validate" })).toMatchObject({ added: 6 });
    expect((await activities.scoreRollouts({ cycleId: "cy-scorers", dataset: "analysis", phase: "validate" })).added).toBe(0);
    expect(await activities.scoreRollouts({ cycleId: "cy-empty", dataset: "analysis", phase: "search" })).toEqual({ scored: 0, added: 0 });
    const rollouts = await store.rollouts.listForCycle({ cycleId: "cy-scorers", phase: "validate" });
    expect(rollouts.map((r) => r.rewards.map((w) => w.scorer).sort())).toEqual([
      ["ground-truth", "judge"],
      ["ground-truth", "judge"],
      ["ground-truth", "judge"],
    ]);
    const perRollout = rollouts.map((r) => r.rewards.reduce((sum, w) => sum + w.value, 0) / r.rewards.length);
    const [summary] = await activities.summarizeContenders({ cycleId: "cy-scorers", agent: postAnalyzer.id, phase: "validate", contenders: ["incumbent"] });
    expect(summary!.meanReward).toBeCloseTo(perRollout.reduce((a, b) => a + b, 0) / 3, 10);
    expect(summary!.fieldAccuracy).toEqual({ category: 1 / 3, sentiment: 1 / 3 });
  });
});

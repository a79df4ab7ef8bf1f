import { createScorer } from "@mastra/core/evals";
import { describe, expect, test } from "vitest";
import { defineAgent } from "../../agents/define.ts";
import { postAnalysisSchema, postAnalyzer, postInputSchema } from "../../agents/post-analyzer/index.ts";
import type { AgentDefinition } from "../../agents/types.ts";
import { startCycle } from "../../runtime/cycles.ts";
import { groundTruth } from "../../scorers/ground-truth.ts";
import { importSubset } from "../support/datasets.ts";
import { testConfig, workerPerTest } from "../support/temporal.ts";

/** The activity types the cycle scheduled (every attempt's scheduling once), from its history. */
async function scheduledActivities(handle: { fetchHistory(): Promise<{ events?: unknown[] | null }> }): Promise<string[]> {
  const events = ((await handle.fetchHistory()).events ?? []) as { activityTaskScheduledEventAttributes?: { activityType?: { name?: string | null } | null } | null }[];
  return events.flatMap((event) => event.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
}

describe("agent batches score the runs they make (real Temporal dev server, fake model)", () => {
  const fixture = workerPerTest();

  async function runCycle(agents: readonly AgentDefinition[] = [postAnalyzer]) {
    const config = testConfig({}, agents);
    const client = await fixture.start(config);
    const db = fixture.db();
    await importSubset(db.store, "scored", 24, 8, agents[0]!.id);
    const handle = await startCycle({ config, store: db.store, client, agent: agents[0]!.id, dataset: "scored", settings: { batchSize: 8, concurrency: 2, parallelBatches: 2 } });
    const result = await handle.result();
    const rollouts = await Promise.all((["collect", "search", "validate"] as const).map((phase) => db.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase })));
    return { result, rollouts: rollouts.flat(), activities: await scheduledActivities(handle) };
  }

  test("every rollout carries its reward from the batch that ran it, and no scoring step of its own runs", async () => {
    const { result, rollouts, activities } = await runCycle();
    expect(result.outcome).toBe("kept");
    expect(rollouts.length).toBeGreaterThan(24);
    for (const rollout of rollouts) expect(rollout.rewards.map((reward) => reward.scorer), rollout.id).toEqual(["ground-truth"]);
    expect(activities).toContain("runAgentBatch");
    expect(activities).not.toContain("scoreRollouts");
  });

  test("a scorer that fails in the batch leaves its rollouts to the evaluate step, which scores them before the gate", async () => {
    // A user's own Mastra scorer whose first try on each post throws (a rate-limited judge, say).
    const tried = new Set<string>();
    const flaky = createScorer({ id: "flaky", description: "fails once per post" }).generateScore(({ run }) => {
      const post = String((run.input as { content?: unknown }).content);
      if (!tried.has(post)) {
        tried.add(post);
        throw new Error("429 too many requests");
      }
      return 1;
    });
    const agent = defineAgent({
      id: "flaky-scored",
      description: postAnalyzer.description,
      input: postInputSchema,
      output: postAnalysisSchema,
      message: (input) => `Post: ${input.content}`,
      prompt: { components: postAnalyzer.prompt.seed.components, labels: { category: "categories", sentiment: "sentiments" }, examples: "examples" },
      scorers: [groundTruth(), flaky],
    });
    const { result, rollouts, activities } = await runCycle([agent]);
    expect(result.outcome).not.toBe("failed");
    expect(activities).toContain("scoreRollouts");
    expect(rollouts.length).toBeGreaterThan(24);
    for (const rollout of rollouts) expect(rollout.rewards.map((reward) => reward.scorer).sort(), rollout.id).toEqual(["flaky", "ground-truth"]);
  });
});

import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import type { Store } from "../../store/index.ts";
import type { PromptContent } from "../../store/schema.ts";
import type { ContenderScore, CycleResult } from "../../workflows/types.ts";
import { importSubset } from "../support/datasets.ts";
import { postAnalyzerPrompt } from "../resources/support.ts";

const AGENT = postAnalyzer.id;
const RESOURCE = postAnalyzer.prompt.resource;
const HOUR = 3_600_000;

/** The line v3 adds to the categories component: the diff test looks for it. */
export const V3_NEW_LINE = "- startups: founders, funding rounds, hiring the first engineers";
export const V2_OLD_LINE = "- startups: founding, funding and growing a young company";

const V2 = postAnalyzerPrompt(postAnalyzer.prompt.seed.components.categories!.replace("technology: software, hardware, AI, programming and gadgets", "technology: software, hardware, AI, chips, programming and gadgets"));
const V3: PromptContent = { ...V2, components: { ...V2.components, categories: V2.components.categories!.replace(V2_OLD_LINE, V3_NEW_LINE) } };
const V4: PromptContent = { ...V3, components: { ...V3.components, examples: 'Post: "We closed our seed round!" -> {"category": "startups", "sentiment": "positive"}' } };

/** Per finished cycle: the version it started from, what it did, and how often its agent runs answered each field right. */
const CYCLES = [
  { id: "cy-post-analyzer-nightly-1", trigger: "schedule:nightly", incumbent: 1, deployed: 2, daysAgo: 3, incumbentSkill: 0.45, candidateSkill: 0.65 },
  { id: "cy-post-analyzer-nightly-2", trigger: "schedule:nightly", incumbent: 2, deployed: 3, daysAgo: 2, incumbentSkill: 0.65, candidateSkill: 0.8 },
  { id: "cy-post-analyzer-manual-3", trigger: "manual", incumbent: 3, deployed: null, daysAgo: 1, incumbentSkill: 0.8, candidateSkill: 0.75 },
] as const;

export const RUNNING_CYCLE = "cy-post-analyzer-manual-4";

export interface Seeded {
  agent: string;
  resource: string;
  /** Versions whose rollouts carry rewards: one learning-curve point each. */
  scoredVersions: number[];
  /** Cycles with a validation result: one learning-curve point each. */
  scoredCycles: string[];
  /** Cycles that deployed, each with a test-split record. */
  deployedCycles: number;
  production: number;
  versions: number;
  rollouts: number;
}

/**
 * The post analyzer's history over three days, as a real one would leave it: four prompt versions (two
 * deployed by nightly cycles, one kept, one hand-published as `candidate`), the cycles' rollouts with
 * ground-truth rewards (better prompts answer more fields right), live OTLP traffic with proxy rewards,
 * a running cycle, and the audit trail all of it wrote. Rollouts and cycles are back-dated with plain
 * inserts, which the store's API (always "now") cannot do.
 */
export async function seedDashboard(store: Store, now = Date.now()): Promise<Seeded> {
  const tasks = await importSubset(store, "posts", 12, 8);
  const all = await store.datasets.tasks("posts", [...tasks.train, ...tasks.validation]);
  const expectedOf = new Map(all.map((task) => [task.id, task.expected as { category: string; sentiment: string }]));

  await store.resources.publish({ name: RESOURCE, content: postAnalyzer.prompt.seed, parentVersion: null, createdBy: "agl", note: "the agent's seed prompt", labels: [{ label: "production", expectedVersion: null }] });
  const published: Record<number, PromptContent> = { 2: V2, 3: V3 };

  let rollouts = 0;
  for (const [index, cycle] of CYCLES.entries()) {
    const started = now - cycle.daysAgo * 24 * HOUR;
    const at = (seconds: number) => new Date(started + seconds * 1000);
    const collect = tasks.train.map((taskId, i) => rollout(`${cycle.id}-collect-${taskId}`, taskId, cycle.incumbent, null, "collect", cycle.id, cycle.incumbentSkill, i, at(4 + i * 3)));
    const validate = tasks.validation.flatMap((taskId, i) => [
      rollout(`${cycle.id}-validate-inc-${taskId}`, taskId, cycle.incumbent, null, "validate", cycle.id, cycle.incumbentSkill, i, at(75 + i * 4)),
      rollout(`${cycle.id}-validate-c1-${taskId}`, taskId, null, "c1", "validate", cycle.id, cycle.candidateSkill, i, at(76 + i * 4)),
    ]);
    const runs = [...collect, ...validate];
    await store.db.insertInto("rollouts").values(runs.map((run) => run.row)).execute();
    await store.rollouts.addRewards(runs.map((run) => run.reward));
    rollouts += runs.length;

    const score = (contender: string, skill: number): ContenderScore => ({ contender, rollouts: tasks.validation.length, failed: 0, meanReward: meanOf(tasks.validation.length, skill), fieldAccuracy: accuracyOf(tasks.validation.length, skill) });
    const result: CycleResult = {
      cycleId: cycle.id,
      agent: AGENT,
      outcome: cycle.deployed ? "deployed" : "kept",
      detail: cycle.deployed ? `c1 beat the incumbent by ${(meanOf(8, cycle.candidateSkill) - meanOf(8, cycle.incumbentSkill)).toFixed(3)}` : `no candidate beat v${cycle.incumbent} by the margin 0.02`,
      incumbentVersion: cycle.incumbent,
      deployedVersion: cycle.deployed,
      baseline: score("incumbent", cycle.incumbentSkill),
      best: score("c1", cycle.candidateSkill),
      collect: { rollouts: collect.length, failed: 0, meanReward: meanOf(collect.length, cycle.incumbentSkill) },
      // A deployed cycle measured both versions on the test split after its decision.
      ...(cycle.deployed ? { test: testOf(cycle.incumbentSkill, cycle.candidateSkill) } : {}),
    };
    await store.db
      .insertInto("cycles")
      .values({
        id: cycle.id,
        agent: AGENT,
        dataset: "posts",
        trigger: cycle.trigger,
        phase: "done",
        progress: JSON.stringify({ phase: "done" }),
        metrics: JSON.stringify(result),
        outcome: result.outcome,
        outcome_detail: result.detail,
        incumbent_version: cycle.incumbent,
        deployed_version: cycle.deployed,
        started_at: new Date(started),
        finished_at: at(118 + index * 20),
      })
      .execute();
    if (cycle.deployed) {
      await store.resources.publish({
        name: RESOURCE,
        content: published[cycle.deployed]!,
        parentVersion: cycle.incumbent,
        createdBy: `cycle:${cycle.id}`,
        note: `deployed by ${cycle.id}`,
        reason: result.detail,
        labels: [{ label: "production", expectedVersion: cycle.incumbent }],
      });
    }
  }

  await store.resources.publish({ name: RESOURCE, content: V4, parentVersion: 3, createdBy: "user:alice", note: "one worked example", labels: [{ label: "candidate", expectedVersion: null }], reason: "try a few-shot example before the next nightly run" });

  const traffic = Array.from({ length: 6 }, (_, i) => {
    const id = `ro-otlp-${i}`;
    return {
      row: {
        ...baseRow(id, null, 3, null, null, null, new Date(now - (5 - i) * HOUR)),
        source: "otlp" as const,
        input: JSON.stringify({ content: ["Shipped dark mode today, users love it", "Our Series A closed this morning", "Rain again, cancelling the picnic", "Roadmap review went long", "New GPU drivers broke my build", "Hiring our first PM"][i] }),
        output: JSON.stringify({ category: ["product_management", "startups", "general", "product_management", "technology", "startups"][i], sentiment: ["positive", "positive", "negative", "neutral", "negative", "positive"][i] }),
        trace_id: `${i}`.padStart(32, "a"),
      },
      reward: { rolloutId: id, scorer: "proxy:thumbs", value: i === 2 ? 0 : 1, reason: i === 2 ? "user gave a thumbs down" : "user gave a thumbs up", details: {}, dedupeKey: "" },
    };
  });
  await store.db.insertInto("rollouts").values(traffic.map((run) => run.row)).execute();
  await store.rollouts.addRewards(traffic.map((run) => run.reward));
  rollouts += traffic.length;

  await store.db
    .insertInto("cycles")
    .values({ id: RUNNING_CYCLE, agent: AGENT, dataset: "posts", trigger: "manual", phase: "collect", progress: JSON.stringify({ phase: "collect", progress: { done: 5, total: 12 } }), metrics: "{}", incumbent_version: 3, started_at: new Date(now - 40_000) })
    .execute();

  return { agent: AGENT, resource: RESOURCE, scoredVersions: [1, 2, 3], scoredCycles: CYCLES.map((cycle) => cycle.id), deployedCycles: CYCLES.filter((cycle) => cycle.deployed).length, production: 3, versions: 4, rollouts };

  function rollout(id: string, taskId: string, version: number | null, candidate: string | null, phase: "collect" | "validate", cycleId: string, skill: number, index: number, createdAt: Date) {
    const expected = expectedOf.get(taskId)!;
    const categoryRight = rightAt(index, skill);
    const sentimentRight = rightAt(index + 3, skill);
    const output = { category: categoryRight ? expected.category : expected.category === "general" ? "technology" : "general", sentiment: sentimentRight ? expected.sentiment : expected.sentiment === "neutral" ? "positive" : "neutral" };
    const value = (Number(categoryRight) + Number(sentimentRight)) / 2;
    const part = (field: string, right: boolean, want: string, got: string) => (right ? `${field} right (${want})` : `${field} wrong: expected ${want}, got ${got}`);
    return {
      row: { ...baseRow(id, taskId, version, candidate, phase, cycleId, createdAt), output: JSON.stringify(output) },
      reward: { rolloutId: id, scorer: "ground-truth", value, reason: `${part("category", categoryRight, expected.category, output.category)}; ${part("sentiment", sentimentRight, expected.sentiment, output.sentiment)}`, details: { fields: { category: categoryRight, sentiment: sentimentRight } }, dedupeKey: "" },
    };
  }

  function baseRow(id: string, taskId: string | null, version: number | null, candidate: string | null, phase: "collect" | "validate" | null, cycleId: string | null, createdAt: Date) {
    const task = taskId ? all.find((t) => t.id === taskId)! : undefined;
    return {
      id,
      agent: AGENT,
      source: "queue" as const,
      dataset: taskId ? "posts" : null,
      task_id: taskId,
      resource_name: RESOURCE,
      resource_version: version,
      candidate_id: candidate,
      cycle_id: cycleId,
      phase,
      input: JSON.stringify(task?.input ?? {}),
      status: "succeeded" as const,
      error: null,
      latency_ms: 180 + ((id.length * 37) % 140),
      model: "fake-keyword",
      input_tokens: 310 + (id.length % 40),
      output_tokens: 14,
      trace_id: null,
      created_at: createdAt,
    };
  }
}

/** Spreads the right answers evenly: the share of indexes under `skill` is `skill`. */
function rightAt(index: number, skill: number): boolean {
  return ((index * 7) % 20) / 20 < skill;
}

function meanOf(count: number, skill: number): number {
  let total = 0;
  for (let i = 0; i < count; i++) total += (Number(rightAt(i, skill)) + Number(rightAt(i + 3, skill))) / 2;
  return total / count;
}

function accuracyOf(count: number, skill: number): Record<string, number> {
  let category = 0;
  let sentiment = 0;
  for (let i = 0; i < count; i++) {
    category += Number(rightAt(i, skill));
    sentiment += Number(rightAt(i + 3, skill));
  }
  return { category: category / count, sentiment: sentiment / count };
}

/** A test-split record as a deploying cycle writes it: both versions and their paired difference, each with a 95 % interval. */
function testOf(incumbentSkill: number, deployedSkill: number): NonNullable<CycleResult["test"]> {
  const around = (mean: number) => ({ n: 20, mean, low: mean - 0.15, high: mean + 0.15 });
  const incumbent = meanOf(20, incumbentSkill);
  const deployed = meanOf(20, deployedSkill);
  return { tasks: 20, incumbent: around(incumbent), deployed: around(deployed), difference: { n: 20, mean: deployed - incumbent, low: deployed - incumbent - 0.1, high: deployed - incumbent + 0.1 } };
}

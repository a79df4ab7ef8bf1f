import type { Store } from "../store/index.ts";
import type { Reward, Rollout } from "../store/rollouts.ts";
import type { RewardScorer, ScorerInput, ScoringContext } from "../scorers/types.ts";
import { batchedWriter, forEachConcurrently } from "./agent-batch.ts";

export type Expected = Map<string, Record<string, unknown> | null>;

export interface RewardingCounts {
  /** Rewards added now. */
  scored: number;
  /** (rollout, scorer) pairs that had their reward already. */
  alreadyScored: number;
  /** Pairs the scorer cannot judge (ground truth without an expected answer). */
  notScorable: number;
  /** Pairs whose scorer threw (the judge model was unreachable or answered nonsense); nothing stored, a later run retries them. */
  failed: number;
}

export interface RewardingOptions {
  expected: Expected;
  context: ScoringContext;
  concurrency: number;
  /** Called after each rollout with the rollouts done so far. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Adds every missing computed reward: for each rollout and each scorer without a reward of that scorer
 * yet, the scorer's reward (one per rollout and scorer, dedupe key ""). Idempotent: a second run, or a
 * concurrent one, adds nothing twice. Rewards are written in multi-row inserts as they come.
 */
export async function addMissingRewards(store: Store, rollouts: readonly Rollout[], scorers: readonly RewardScorer[], options: RewardingOptions) {
  const counts: RewardingCounts = { scored: 0, alreadyScored: 0, notScorable: 0, failed: 0 };
  const failures: { rolloutId: string; scorer: string; error: string }[] = [];
  const writer = batchedWriter(async (rewards: NewReward[]) => (counts.scored += await store.rollouts.addRewards(rewards)), 50);
  let done = 0;
  await forEachConcurrently(rollouts, options.concurrency, undefined, async (rollout) => {
    const missing = scorers.filter((scorer) => !rollout.rewards.some((reward) => reward.scorer === scorer.id));
    counts.alreadyScored += scorers.length - missing.length;
    const scored = await scoreRun(rollout.id, { input: rollout.input, output: rollout.output, error: rollout.error, expected: options.expected.get(rollout.id) ?? null, toolCalls: rollout.toolCalls ?? [] }, missing, options.context);
    for (const reward of scored.rewards) await writer.add(reward);
    counts.notScorable += scored.notScorable;
    counts.failed += scored.failures.length;
    failures.push(...scored.failures);
    options.onProgress?.(++done, rollouts.length);
  });
  await writer.flush();
  return { counts, failures };
}

export type NewReward = Omit<Reward, "createdAt">;

/**
 * Every scorer's reward for one run. A scorer that throws (the judge unreachable) is a failure to report,
 * not a reward: nothing is stored for it, and a later scoring pass tries it again.
 */
export async function scoreRun(rolloutId: string, subject: ScorerInput, scorers: readonly RewardScorer[], context: ScoringContext) {
  const rewards: NewReward[] = [];
  const failures: { rolloutId: string; scorer: string; error: string }[] = [];
  let notScorable = 0;
  for (const scorer of scorers) {
    try {
      const reward = await scorer.score(subject, context);
      if (reward) rewards.push({ rolloutId, scorer: scorer.id, ...reward, dedupeKey: "" });
      else notScorable++;
    } catch (error) {
      failures.push({ rolloutId, scorer: scorer.id, error: error instanceof Error ? error.message : String(error) });
    }
  }
  return { rewards, failures, notScorable };
}

/** Ground truth per rollout id, from the task each rollout ran (any data set). */
export async function expectedOf(store: Store, rollouts: readonly Rollout[]): Promise<Expected> {
  const expected: Expected = new Map();
  const byDataset = Map.groupBy(
    rollouts.filter((rollout) => rollout.dataset && rollout.taskId),
    (rollout) => rollout.dataset!,
  );
  for (const [dataset, group] of byDataset) {
    const tasks = new Map((await store.datasets.tasks(dataset, [...new Set(group.map((rollout) => rollout.taskId!))])).map((task) => [task.id, task.expected]));
    for (const rollout of group) expected.set(rollout.id, tasks.get(rollout.taskId!) ?? null);
  }
  return expected;
}

import { createHash } from "node:crypto";
import { rolloutReward, scoringPlan } from "../scorers/registry.ts";
import { runAgentTasks } from "./agent-batch.ts";
import { type ActivityDependencies, nonRetryable, prepareAgent } from "./cycle-activities.ts";
import { addMissingRewards, expectedOf } from "./rewarding.ts";

export interface QueueBatchInput {
  submissionId: string;
  agent: string;
  /** The submission's own data set (`submission-<id>`), which holds its tasks. */
  dataset: string;
  taskIds: string[];
  concurrency: number;
}

export interface QueueBatchResult {
  ran: number;
  skipped: number;
  /** Rollouts of the batch whose agent run failed (this attempt's or an earlier one's). */
  failed: number;
  /** Rollouts of the batch with a reward from the configured scorers, and the sum of those rewards. */
  rewarded: number;
  rewardSum: number;
  /** Rewards a scorer could not compute (the judge unreachable); `agl eval` adds them later. */
  rewardFailures: number;
  /** The prompt version labelled `production` when the batch ran. */
  version: number;
}

/** A queue rollout's id: one per (submission, task), so a retried or resumed batch writes each rollout once. */
export function queueRolloutId(submissionId: string, taskId: string): string {
  return `ro-${createHash("sha256").update(`queue\u0000${submissionId}\u0000${taskId}`).digest("hex").slice(0, 24)}`;
}

export function createQueueActivities(deps: ActivityDependencies) {
  const { store, config } = deps;

  /**
   * Runs the agent over one batch of a submission with the prompt labelled `production` now, records
   * it on every rollout (source "queue", no cycle), and rewards each run with the configured computed
   * scorers as it ends. A scorer failure does not fail the batch: the rollouts are what the queue owes.
   */
  async function runQueueBatch(input: QueueBatchInput): Promise<QueueBatchResult> {
    const agent = nonRetryable(() => config.agents.get(input.agent));
    const production = await prepareAgent(store, agent, undefined);
    const idFor = (taskId: string) => queueRolloutId(input.submissionId, taskId);
    const plan = nonRetryable(() => scoringPlan(agent, config.cycle.scorers));
    const batch = await runAgentTasks(store, {
      agent,
      run: deps.runnerFor(agent),
      dataset: input.dataset,
      jobs: [{ prompt: { content: production.content, version: production.version, candidateId: null }, taskIds: input.taskIds, idFor }],
      concurrency: input.concurrency,
      origin: { source: "queue", cycleId: null, phase: null },
      scoring: { scorers: plan.computed, context: deps.scoring },
    });
    const ids = input.taskIds.map(idFor);
    // What the batch could not score as it ran (a judge that failed, rollouts of an earlier attempt) gets one more pass.
    let rewardFailures = 0;
    if (batch.unscored > 0) {
      const rollouts = await store.rollouts.getMany(ids);
      rewardFailures = (await addMissingRewards(store, rollouts, plan.computed, { expected: await expectedOf(store, rollouts), context: deps.scoring, concurrency: input.concurrency })).failures.length;
    }
    const stored = await store.rollouts.getMany(ids);
    const rewards = stored.flatMap((rollout) => rolloutReward(plan.weights, rollout.rewards) ?? []);
    return {
      ran: batch.ran,
      skipped: batch.skipped,
      failed: stored.filter((rollout) => rollout.status === "failed").length,
      rewarded: rewards.length,
      rewardSum: rewards.reduce((sum, reward) => sum + reward, 0),
      rewardFailures,
      version: production.version,
    };
  }

  return { runQueueBatch };
}

import { proxyActivities, workflowInfo } from "@temporalio/workflow";
import type { createQueueActivities } from "../activities/queue-activities.ts";
import { agentBatchQueue } from "./task-queues.ts";
import { balancedBatches, inParallel } from "./batch-plan.ts";

type Activities = ReturnType<typeof createQueueActivities>;

export interface SubmissionInput {
  agent: string;
  /** The submission's data set, `submission-<id>`, holding its tasks. */
  dataset: string;
  taskIds: string[];
  /** The cycle settings a submission shares: batch size, concurrency, batches in flight, durability. */
  settings: { batchSize: number; concurrency: number; parallelBatches: number; batchTimeoutMinutes: number; heartbeatTimeoutSeconds: number };
}

export interface SubmissionResult {
  submissionId: string;
  agent: string;
  dataset: string;
  tasks: number;
  /** Agent runs made by this run of the workflow, and rollouts an earlier run had stored already. */
  ran: number;
  skipped: number;
  failed: number;
  /** Rollouts with a reward from the configured scorers, and the mean of those rewards (null with none). */
  rewarded: number;
  meanReward: number | null;
  rewardFailures: number;
  /** The production versions the batches ran with (several if a deploy happened meanwhile). */
  versions: number[];
}

/**
 * Pattern B, the worker queue: runs an agent over a submission's tasks in batch activities, spread over
 * every worker polling the task queue. The workflow id is the submission id, from which every rollout
 * id derives, so a batch retried on another worker, or the submission resumed, writes each rollout once.
 */
export async function processSubmission(input: SubmissionInput): Promise<SubmissionResult> {
  const submissionId = workflowInfo().workflowId;
  const { settings } = input;
  // Like a cycle's batches: on the batch queue, spread over the workers by capacity, never eagerly.
  const { runQueueBatch } = proxyActivities<Activities>({
    taskQueue: agentBatchQueue(workflowInfo().taskQueue),
    allowEagerDispatch: false,
    startToCloseTimeout: `${settings.batchTimeoutMinutes} minutes`,
    heartbeatTimeout: `${settings.heartbeatTimeoutSeconds} seconds`,
    retry: { initialInterval: "2 seconds", maximumInterval: "1 minute", maximumAttempts: 5 },
  });
  const totals = { ran: 0, skipped: 0, failed: 0, rewarded: 0, rewardSum: 0, rewardFailures: 0 };
  const versions = new Set<number>();
  await inParallel(balancedBatches(input.taskIds, settings.batchSize, settings.parallelBatches), settings.parallelBatches, async (taskIds) => {
    const batch = await runQueueBatch({ submissionId, agent: input.agent, dataset: input.dataset, taskIds, concurrency: settings.concurrency });
    for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += batch[key];
    versions.add(batch.version);
  });
  return {
    submissionId,
    agent: input.agent,
    dataset: input.dataset,
    tasks: input.taskIds.length,
    ran: totals.ran,
    skipped: totals.skipped,
    failed: totals.failed,
    rewarded: totals.rewarded,
    meanReward: totals.rewarded > 0 ? totals.rewardSum / totals.rewarded : null,
    rewardFailures: totals.rewardFailures,
    versions: [...versions].sort((a, b) => a - b),
  };
}

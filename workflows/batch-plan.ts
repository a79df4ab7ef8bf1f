import type { BatchInput, PromptRef } from "../activities/cycle-activities.ts";
import type { CycleActivities } from "./cycle-activities-proxies.ts";

/** Runs of one prompt on some tasks; `repeat` numbers a repeated evaluation (from 1). */
export interface BatchJob {
  prompt: PromptRef;
  taskIds: string[];
  repeat?: number;
}

/**
 * Cuts `items` into batches of at most `batchSize`, as few and as even as `parallelBatches` lanes allow:
 * the count is a multiple of the lanes and the sizes differ by one at most. Equal batches finish together,
 * so a round of batches does not wait on one long straggler, and a phase's last round is as full as its first.
 */
export function balancedBatches<T>(items: readonly T[], batchSize: number, parallelBatches: number): T[][] {
  const count = Math.min(items.length, parallelBatches * Math.ceil(items.length / (parallelBatches * batchSize)));
  return Array.from({ length: count }, (_, index) => items.slice(Math.floor((index * items.length) / count), Math.floor(((index + 1) * items.length) / count)));
}

/**
 * One phase's runs (every job's prompt on its tasks), laid out as agent batches: all runs of the phase in one
 * sequence, cut by `balancedBatches`, so a batch may run several prompts. Batches per prompt would leave
 * each prompt's last batch part-empty, and a phase of three candidates three rounds of stragglers.
 */
export function planBatches(jobs: readonly BatchJob[], batchSize: number, parallelBatches: number): BatchJob[][] {
  const runs = jobs.flatMap((job, jobIndex) => job.taskIds.map((taskId) => ({ jobIndex, taskId })));
  return balancedBatches(runs, batchSize, parallelBatches).map((batch) => {
    const grouped: BatchJob[] = [];
    let previous = -1;
    for (const { jobIndex, taskId } of batch) {
      if (jobIndex !== previous) {
        const { prompt, repeat } = jobs[jobIndex]!;
        grouped.push({ prompt, taskIds: [], ...(repeat ? { repeat } : {}) });
        previous = jobIndex;
      }
      grouped.at(-1)!.taskIds.push(taskId);
    }
    return grouped;
  });
}

/** Runs `work` on every item, at most `limit` at a time, in order of the items. */
export async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/**
 * Runs one phase's jobs as agent batches (`planBatches`), `parallelBatches` at a time, calling `onBatchDone`
 * with each batch's run count. Returns how many rollouts the batches left unscored: the caller's evaluate
 * step has those to score (none when every batch scored its runs).
 */
export async function runPhaseBatches(
  agentBatches: CycleActivities["agentBatches"],
  phase: Omit<BatchInput, "jobs" | "concurrency">,
  jobs: readonly BatchJob[],
  settings: { batchSize: number; parallelBatches: number; concurrency: number },
  onBatchDone: (runs: number) => void,
): Promise<number> {
  let unscored = 0;
  await inParallel(planBatches(jobs, settings.batchSize, settings.parallelBatches), settings.parallelBatches, async (batch) => {
    // Awaited first: `unscored += await …` would read the total before the await and lose another lane's count.
    const result = await agentBatches.runAgentBatch({ ...phase, jobs: batch, concurrency: settings.concurrency });
    unscored += result.unscored;
    onBatchDone(batch.reduce((runs, job) => runs + job.taskIds.length, 0));
  });
  return unscored;
}

import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import type { AgentRunner } from "../agents/runner.ts";
import type { AgentDefinition } from "../agents/types.ts";
import type { Store } from "../store/index.ts";
import type { NewRollout } from "../store/rollouts.ts";
import type { PromptContent } from "../store/schema.ts";
import type { RewardScorer, ScoringContext } from "../scorers/types.ts";
import { type NewReward, scoreRun } from "./rewarding.ts";

export const HEARTBEAT_EVERY_MS = 2_000;

export interface AgentTasks {
  agent: AgentDefinition;
  run: AgentRunner;
  dataset: string;
  /** Each prompt with the tasks it runs on; a batch may run several prompts (a phase's candidates). */
  jobs: AgentJob[];
  concurrency: number;
  /** Where the rollouts come from: a cycle's phase, or the worker queue (no cycle). */
  origin: Pick<NewRollout, "source" | "cycleId" | "phase">;
  /** Scorers to reward each run with as it ends, stored with its rollout; without them the batch stores rollouts only. */
  scoring?: { scorers: readonly RewardScorer[]; context: ScoringContext };
}

export interface AgentJob {
  prompt: { content: PromptContent; version: number | null; candidateId: string | null };
  taskIds: string[];
  /** The rollout id of a task: derived from what the batch is (cycle or submission, prompt, task), never random. */
  idFor(taskId: string): string;
}

export interface AgentTasksResult {
  ran: number;
  skipped: number;
  failed: number;
  /** Rollouts of the batch that may lack a reward of the batch's scorers (all of them when it scores none). */
  unscored: number;
}

/**
 * The batch core of every agent-batch activity (a cycle's collect, search and validate; the worker
 * queue): runs the agent over the tasks with bounded concurrency, heartbeating progress. Tasks whose
 * rollout an earlier attempt stored are skipped, so a retry after a worker died neither loses nor
 * duplicates a rollout. Given scorers, it rewards each run as it ends, while other runs wait on the
 * model, so a phase needs no scoring pass of its own unless a batch reports rollouts it left unscored.
 */
export async function runAgentTasks(store: Store, batch: AgentTasks): Promise<AgentTasksResult> {
  const context = Context.current();
  const runs = batch.jobs.flatMap((job) => job.taskIds.map((taskId) => ({ job, taskId, id: job.idFor(taskId) })));
  const existing = await store.rollouts.existingIds(runs.map((run) => run.id));
  const todo = runs.filter((run) => !existing.has(run.id));
  const tasks = new Map((await store.datasets.tasks(batch.dataset, [...new Set(todo.map((run) => run.taskId))])).map((task) => [task.id, task]));
  let done = existing.size;
  let failed = 0;
  // Rollouts an earlier attempt stored may lack their rewards: this attempt does not know, so it counts them unscored.
  let unscored = batch.scoring ? existing.size : runs.length;
  const writer = batchedWriter(async (rows: { rollout: NewRollout; rewards: NewReward[] }[]) => {
    await store.rollouts.insertMany(rows.map((row) => row.rollout));
    const rewards = rows.flatMap((row) => row.rewards);
    // After the rollouts they belong to; a crash in between leaves rollouts without rewards, which the retry counts unscored.
    if (rewards.length > 0) await store.rollouts.addRewards(rewards);
  }, Math.max(4, batch.concurrency));
  const beat = () => context.heartbeat({ done, total: runs.length });
  const timer = setInterval(beat, HEARTBEAT_EVERY_MS);
  try {
    await forEachConcurrently(todo, batch.concurrency, context.cancellationSignal, async ({ job, taskId, id }) => {
      const task = tasks.get(taskId);
      // The workflow took the ids from the data set; one gone means it was replaced under the cycle, which a retry cannot mend.
      if (!task) throw ApplicationFailure.nonRetryable(`Task ${taskId} is no longer in data set ${batch.dataset}.`, "TaskNotFound");
      const result = await batch.run(task.input, job.prompt.content, context.cancellationSignal);
      const scored = batch.scoring
        ? await scoreRun(id, { input: task.input, output: result.output, error: result.error, expected: task.expected, toolCalls: result.toolCalls }, batch.scoring.scorers, batch.scoring.context)
        : undefined;
      if (scored && scored.failures.length > 0) unscored++;
      await writer.add({
        rollout: {
          id,
          agent: batch.agent.id,
          ...batch.origin,
          dataset: batch.dataset,
          taskId,
          resourceName: batch.agent.prompt.resource,
          resourceVersion: job.prompt.version,
          candidateId: job.prompt.candidateId,
          input: task.input,
          output: result.output,
          status: result.status,
          error: result.error,
          latencyMs: result.latencyMs,
          model: result.model,
          inputTokens: result.inputTokens,
          outputTokens: result.outputTokens,
          traceId: null,
          toolCalls: result.toolCalls,
        },
        rewards: scored?.rewards ?? [],
      });
      done++;
      if (result.status === "failed") failed++;
    });
    await writer.flush();
  } finally {
    clearInterval(timer);
  }
  return { ran: todo.length, skipped: existing.size, failed, unscored };
}

/**
 * Groups rows into multi-row inserts: one statement per `size` rows (or per `maxDelayMs`) instead
 * of one per row. `add` hands a full group to the store without waiting for it, so the run that
 * filled it goes on to its next task; it waits only while the writes are `size * 4` rows or more
 * behind. A failed write fails the next `add` and `flush`, and nothing after it is written. A worker
 * dying between flushes loses only unwritten rows, which the retry produces again because they are
 * not stored.
 */
export function batchedWriter<T>(write: (rows: T[]) => Promise<unknown>, size: number, maxDelayMs = 200) {
  let pending: T[] = [];
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();
  let unwritten = 0;
  let failure: { error: unknown } | undefined;
  const startWrite = () => {
    clearTimeout(timer);
    timer = undefined;
    const rows = pending;
    pending = [];
    if (rows.length === 0) return;
    unwritten += rows.length;
    writing = writing
      .then(() => (failure ? undefined : write(rows)))
      .then(
        () => void (unwritten -= rows.length),
        (error: unknown) => void (failure ??= { error }),
      );
  };
  const flush = async () => {
    startWrite();
    await writing;
    if (failure) throw failure.error;
  };
  return {
    async add(row: T) {
      if (failure) throw failure.error;
      pending.push(row);
      if (pending.length < size) {
        timer ??= setTimeout(startWrite, maxDelayMs);
        return;
      }
      startWrite();
      if (unwritten >= size * 4) await flush();
    },
    flush,
  };
}

export async function forEachConcurrently<T>(items: readonly T[], limit: number, signal: AbortSignal | undefined, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      signal?.throwIfAborted();
      await work(items[next++]!);
    }
  });
  await Promise.all(lanes);
}

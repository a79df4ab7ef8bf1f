import { Context } from "@temporalio/activity";
import type { AgentRunner } from "../agents/runner.ts";
import type { AgentDefinition } from "../agents/types.ts";
import type { Store } from "../store/index.ts";
import type { NewRollout } from "../store/rollouts.ts";
import type { PromptContent } from "../store/schema.ts";

export const HEARTBEAT_EVERY_MS = 2_000;

export interface AgentTasks {
  agent: AgentDefinition;
  run: AgentRunner;
  dataset: string;
  taskIds: string[];
  concurrency: number;
  /** The rollout id of a task: derived from what the batch is (cycle or submission, prompt, task), never random. */
  idFor(taskId: string): string;
  prompt: { content: PromptContent; version: number | null; candidateId: string | null };
  /** Where the rollouts come from: a cycle's phase, or the worker queue (no cycle). */
  origin: Pick<NewRollout, "source" | "cycleId" | "phase">;
}

/**
 * The batch core of every agent-batch activity (a cycle's collect, search and validate; the worker
 * queue): runs the agent over the tasks with bounded concurrency, heartbeating progress. Tasks whose
 * rollout an earlier attempt stored are skipped, so a retry after a worker died neither loses nor
 * duplicates a rollout.
 */
export async function runAgentTasks(store: Store, batch: AgentTasks): Promise<{ ran: number; skipped: number; failed: number }> {
  const context = Context.current();
  const existing = await store.rollouts.existingIds(batch.taskIds.map(batch.idFor));
  const todo = await store.datasets.tasks(
    batch.dataset,
    batch.taskIds.filter((taskId) => !existing.has(batch.idFor(taskId))),
  );
  let done = existing.size;
  let failed = 0;
  const writer = batchedWriter((rollouts: NewRollout[]) => store.rollouts.insertMany(rollouts), Math.max(4, batch.concurrency));
  const beat = () => context.heartbeat({ done, total: batch.taskIds.length });
  const timer = setInterval(beat, HEARTBEAT_EVERY_MS);
  try {
    await forEachConcurrently(todo, batch.concurrency, context.cancellationSignal, async (task) => {
      const result = await batch.run(task.input, batch.prompt.content, context.cancellationSignal);
      await writer.add({
        id: batch.idFor(task.id),
        agent: batch.agent.id,
        ...batch.origin,
        dataset: batch.dataset,
        taskId: task.id,
        resourceName: batch.agent.prompt.resource,
        resourceVersion: batch.prompt.version,
        candidateId: batch.prompt.candidateId,
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
      });
      done++;
      if (result.status === "failed") failed++;
    });
    await writer.flush();
  } finally {
    clearInterval(timer);
  }
  return { ran: todo.length, skipped: existing.size, failed };
}

/**
 * Groups rows into multi-row inserts: one statement per `size` rows (or per `maxDelayMs`) instead
 * of one per row. A worker dying between flushes loses only unflushed rows, which the retry
 * produces again because they are not stored.
 */
export function batchedWriter<T>(write: (rows: T[]) => Promise<unknown>, size: number, maxDelayMs = 200) {
  let pending: T[] = [];
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<unknown> = Promise.resolve();
  const flush = async () => {
    clearTimeout(timer);
    timer = undefined;
    const rows = pending;
    pending = [];
    writing = writing.then(() => (rows.length > 0 ? write(rows) : undefined));
    await writing;
  };
  return {
    async add(row: T) {
      pending.push(row);
      if (pending.length >= size) await flush();
      else timer ??= setTimeout(() => void flush().catch(() => undefined), maxDelayMs);
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

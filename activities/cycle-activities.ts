import { createHash } from "node:crypto";
import { join } from "node:path";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import type { Client } from "@temporalio/client";
import { readDatasetFile } from "../agents/dataset-file.ts";
import { getAgent } from "../agents/registry.ts";
import type { AgentRunner } from "../agents/runner.ts";
import type { AgentDefinition } from "../agents/types.ts";
import type { LoadedConfig } from "../config/load.ts";
import { getScorer } from "../scorers/registry.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "../store/errors.ts";
import type { Store } from "../store/index.ts";
import type { NewRollout, Rollout } from "../store/rollouts.ts";
import type { PromptContent, RolloutPhase } from "../store/schema.ts";
import type { ContenderScore, CycleProgress, CycleResult } from "../workflows/types.ts";
import { OptimizerError, runOptimizer } from "./python-bridge.ts";
import { OPTIMIZER_CONTRACT_VERSION, type OptimizerRequest } from "./optimizer-contract.ts";

export interface ActivityDependencies {
  config: LoadedConfig;
  store: Store;
  /** Built on first use: loading a local model is not free, and most activities never need it. */
  runnerFor(agent: AgentDefinition): AgentRunner;
}

/** Which prompt a batch runs: a published version, or a candidate of this cycle that is not published yet. */
export type PromptRef = { version: number } | { candidateId: string };

export interface BatchInput {
  cycleId: string;
  agent: string;
  dataset: string;
  phase: RolloutPhase;
  prompt: PromptRef;
  taskIds: string[];
  concurrency: number;
}

export interface BeginCycleInput {
  cycleId: string;
  agent: string;
  dataset: string;
  trigger: string;
}

export type BeginCycleResult =
  | { status: "started"; incumbentVersion: number; trainTaskIds: string[]; validationTaskIds: string[] }
  | { status: "busy"; holder: string };

export const GROUND_TRUTH = "ground-truth";
const HEARTBEAT_EVERY_MS = 2_000;

export function createCycleActivities(deps: ActivityDependencies) {
  const { store, config } = deps;

  /** Seeds what the agent needs on first use: version 1 of its prompt with the `production` label, and its bundled data sets. */
  async function prepareAgent(agent: AgentDefinition, dataset: string): Promise<number> {
    const production = await store.resources.getByLabel(agent.prompt.resource, "production").catch((error: unknown) => {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    });
    const incumbent =
      production ??
      (await store.resources
        .publish({
          name: agent.prompt.resource,
          content: agent.prompt.seed,
          parentVersion: null,
          createdBy: `agent:${agent.id}`,
          note: "seed: the agent's built-in instructions",
          idempotencyKey: `seed:${agent.prompt.resource}`,
          labels: [{ label: "production", expectedVersion: null }],
        })
        .catch(async (error: unknown) => {
          // Another process seeded it at the same moment; theirs is as good as ours.
          if (error instanceof ConflictError) return store.resources.getByLabel(agent.prompt.resource, "production");
          throw error;
        }));
    const bundled = agent.bundledDatasets[dataset];
    if (bundled && !(await store.datasets.exists(dataset))) {
      const tasks = await readDatasetFile(bundled, agent);
      await store.datasets.importTasks({ name: dataset, agent: agent.id, source: bundled, tasks }).catch((error: unknown) => {
        if (!(error instanceof ConflictError)) throw error;
      });
    }
    return incumbent.version;
  }

  async function beginCycle(input: BeginCycleInput): Promise<BeginCycleResult> {
    const agent = nonRetryable(() => getAgent(input.agent));
    const incumbentVersion = await prepareAgent(agent, input.dataset);
    const dataset = await store.datasets.get(input.dataset).catch(rethrowNonRetryable);
    if (dataset.agent !== agent.id) {
      throw ApplicationFailure.nonRetryable(`Dataset "${dataset.name}" was imported for agent "${dataset.agent}", not "${agent.id}".`, "InvalidInput");
    }
    const trainTaskIds = await store.datasets.taskIds(input.dataset, "train");
    const validationTaskIds = await store.datasets.taskIds(input.dataset, "validation");
    if (trainTaskIds.length === 0 || validationTaskIds.length === 0) {
      throw ApplicationFailure.nonRetryable(
        `Dataset "${input.dataset}" needs tasks in both splits (train: ${trainTaskIds.length}, validation: ${validationTaskIds.length}); the gate judges candidates on validation tasks the optimizer never saw.`,
        "InvalidInput",
      );
    }
    await store.cycles.create({ id: input.cycleId, agent: agent.id, dataset: input.dataset, trigger: input.trigger });
    const lease = await acquireAgentLease(agent.id, input.cycleId);
    if (!lease.acquired) {
      await store.cycles.update(input.cycleId, { phase: "done", outcome: "skipped", outcomeDetail: `cycle ${lease.holder} is running for agent ${agent.id}`, finished: true });
      return { status: "busy", holder: lease.holder };
    }
    await store.cycles.update(input.cycleId, { phase: "collect", incumbentVersion });
    return { status: "started", incumbentVersion, trainTaskIds, validationTaskIds };
  }

  /** The lease of a cycle whose workflow is gone (terminated, timed out, reset) must not block the agent forever. */
  async function acquireAgentLease(agent: string, cycleId: string) {
    const lease = await store.cycles.acquireLease(agent, cycleId);
    if (lease.acquired) return lease;
    if (await workflowIsRunning(lease.holder)) return lease;
    if (await store.cycles.takeOverLease(agent, lease.holder, cycleId)) return { acquired: true as const };
    return store.cycles.acquireLease(agent, cycleId);
  }

  async function workflowIsRunning(workflowId: string): Promise<boolean> {
    const client: Client = Context.current().client;
    try {
      const description = await client.workflow.getHandle(workflowId).describe();
      return description.status.name === "RUNNING";
    } catch (error) {
      if ((error as Error).name === "WorkflowNotFoundError") return false;
      throw error;
    }
  }

  async function resolvePrompt(cycleId: string, agent: AgentDefinition, ref: PromptRef): Promise<{ content: PromptContent; version: number | null; candidateId: string | null }> {
    if ("version" in ref) {
      const version = await store.resources.getVersion(agent.prompt.resource, ref.version);
      return { content: version.content, version: ref.version, candidateId: null };
    }
    const candidate = await store.cycles.candidate(cycleId, ref.candidateId);
    return { content: candidate.content, version: null, candidateId: ref.candidateId };
  }

  /**
   * Runs the agent over a batch of tasks with bounded concurrency. Each rollout's id is derived from
   * (cycle, phase, prompt, task), and rollouts already stored by an earlier attempt are skipped, so a
   * retry after a worker died neither loses nor duplicates a rollout.
   */
  async function runAgentBatch(input: BatchInput): Promise<{ ran: number; skipped: number; failed: number }> {
    const context = Context.current();
    const agent = nonRetryable(() => getAgent(input.agent));
    const prompt = await resolvePrompt(input.cycleId, agent, input.prompt);
    const contender = prompt.candidateId ?? `v${prompt.version}`;
    const idFor = (taskId: string) => rolloutId(input.cycleId, input.phase, contender, taskId);
    const existing = await store.rollouts.existingIds(input.taskIds.map(idFor));
    const todo = await store.datasets.tasks(
      input.dataset,
      input.taskIds.filter((taskId) => !existing.has(idFor(taskId))),
    );
    const run = deps.runnerFor(agent);
    let done = existing.size;
    let failed = 0;
    const writer = batchedWriter((rollouts: NewRollout[]) => store.rollouts.insertMany(rollouts), Math.max(4, input.concurrency));
    const beat = () => context.heartbeat({ done, total: input.taskIds.length });
    const timer = setInterval(beat, HEARTBEAT_EVERY_MS);
    try {
      await forEachConcurrently(todo, input.concurrency, context.cancellationSignal, async (task) => {
        const result = await run(task.input, prompt.content, context.cancellationSignal);
        await writer.add({
          id: idFor(task.id),
          agent: agent.id,
          source: "queue",
          dataset: input.dataset,
          taskId: task.id,
          resourceName: agent.prompt.resource,
          resourceVersion: prompt.version,
          candidateId: prompt.candidateId,
          cycleId: input.cycleId,
          phase: input.phase,
          input: task.input,
          output: result.output,
          status: result.status,
          error: result.error,
          latencyMs: result.latencyMs,
          model: result.model,
          inputTokens: result.inputTokens,
          outputTokens: result.outputTokens,
          traceId: null,
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

  /** Adds the ground-truth reward to every rollout of the phase that has none yet; running it twice adds nothing. */
  async function scoreRollouts(input: { cycleId: string; dataset: string; phase: RolloutPhase }): Promise<{ scored: number; added: number }> {
    const scorer = getScorer(GROUND_TRUTH);
    const rollouts = await store.rollouts.listForCycle({ cycleId: input.cycleId, phase: input.phase });
    const unscored = rollouts.filter((rollout) => !rollout.rewards.some((reward) => reward.scorer === scorer.id));
    const expected = await expectedByTask(input.dataset, unscored);
    const rewards = [];
    for (const rollout of unscored) {
      const reward = await scorer.score({ input: rollout.input, output: rollout.output, error: rollout.error, expected: expected.get(rollout.taskId ?? "") ?? null });
      if (reward) rewards.push({ rolloutId: rollout.id, scorer: scorer.id, ...reward, dedupeKey: "" });
    }
    const added = await store.rollouts.addRewards(rewards);
    return { scored: rollouts.length - unscored.length + rewards.length, added };
  }

  async function expectedByTask(dataset: string, rollouts: Rollout[]): Promise<Map<string, Record<string, unknown> | null>> {
    const ids = [...new Set(rollouts.map((rollout) => rollout.taskId).filter((id): id is string => id !== null))];
    const tasks = await store.datasets.tasks(dataset, ids);
    return new Map(tasks.map((task) => [task.id, task.expected]));
  }

  /** Mean ground-truth reward and per-field accuracy of each contender on the validation split. */
  async function summarizeContenders(input: { cycleId: string; phase: RolloutPhase; contenders: string[] }): Promise<ContenderScore[]> {
    const rollouts = await store.rollouts.listForCycle({ cycleId: input.cycleId, phase: input.phase });
    return input.contenders.map((contender) =>
      summarize(
        contender,
        rollouts.filter((rollout) => (rollout.candidateId ?? "incumbent") === contender),
      ),
    );
  }

  async function proposeCandidates(input: {
    cycleId: string;
    agent: string;
    dataset: string;
    incumbentVersion: number;
    round: number;
    optimizer: { algorithm: string; candidates: number; seed: number; maxExamples: number; maxKeywords: number; timeoutMinutes: number };
  }): Promise<{ candidateIds: string[]; rounds: unknown[]; stats: Record<string, unknown> }> {
    const context = Context.current();
    const agent = nonRetryable(() => getAgent(input.agent));
    const incumbent = await store.resources.getVersion(agent.prompt.resource, input.incumbentVersion);
    const rollouts = await store.rollouts.listForCycle({ cycleId: input.cycleId, phase: "collect" });
    const expected = await expectedByTask(input.dataset, rollouts);
    const request: OptimizerRequest = {
      schema_version: OPTIMIZER_CONTRACT_VERSION,
      command: "propose",
      request_id: `${input.cycleId}/train/${input.round}`,
      algorithm: input.optimizer.algorithm,
      seed: input.optimizer.seed,
      params: { num_candidates: input.optimizer.candidates, max_examples: input.optimizer.maxExamples, max_keywords: input.optimizer.maxKeywords },
      agent: {
        name: agent.id,
        input_text_field: agent.inputTextField,
        output_fields: Object.fromEntries(Object.entries(agent.labels).map(([field, labels]) => [field, [...labels]])),
        label_components: agent.prompt.labelComponents,
        examples_component: agent.prompt.examplesComponent,
      },
      prompt: { version: incumbent.version, engine: incumbent.content.engine, components: incumbent.content.components },
      rollouts: rollouts.map((rollout) => {
        const rewards = rollout.rewards.map((reward) => ({ scorer: reward.scorer, value: reward.value, reason: reward.reason }));
        return {
          id: rollout.id,
          task_id: rollout.taskId,
          input: rollout.input,
          output: rollout.output,
          expected: expected.get(rollout.taskId ?? "") ?? null,
          reward: rewards.length > 0 ? rewards.reduce((sum, reward) => sum + reward.value, 0) / rewards.length : null,
          rewards,
          error: rollout.error,
        };
      }),
    };
    let lastProgress = { done: 0, total: 0, message: "starting" };
    const timer = setInterval(() => context.heartbeat(lastProgress), HEARTBEAT_EVERY_MS);
    try {
      const response = await runOptimizer({
        command: config.optimizer.command,
        workDir: join(config.dataPath, "work", "optimizer"),
        request,
        timeoutMs: input.optimizer.timeoutMinutes * 60_000,
        signal: context.cancellationSignal,
        onProgress: (progress) => (lastProgress = progress),
      });
      await store.cycles.saveCandidates(
        response.candidates.map((candidate) => ({
          cycleId: input.cycleId,
          id: candidate.id,
          content: { engine: incumbent.content.engine, components: candidate.components },
          strategy: candidate.strategy,
          rationale: candidate.rationale,
          details: { trainScore: candidate.train_score, algorithm: response.algorithm, seed: response.seed },
        })),
      );
      return { candidateIds: response.candidates.map((candidate) => candidate.id), rounds: response.rounds, stats: response.stats };
    } catch (error) {
      if (error instanceof OptimizerError) {
        if (error.kind === "cancelled") throw error;
        throw ApplicationFailure.create({ message: error.message, type: `Optimizer.${error.kind}`, nonRetryable: !error.retryable });
      }
      throw error;
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * Publishes the winning candidate as a new immutable version and moves `production` to it in one
   * transaction, compare-and-set on the incumbent. Keyed by the cycle, so a retried deploy returns
   * the version the first attempt made instead of making a second one.
   */
  async function deployCandidate(input: { cycleId: string; agent: string; candidateId: string; incumbentVersion: number; metrics: Record<string, unknown> }): Promise<{ version: number }> {
    const agent = nonRetryable(() => getAgent(input.agent));
    const candidate = await store.cycles.candidate(input.cycleId, input.candidateId);
    try {
      const version = await store.resources.publish({
        name: agent.prompt.resource,
        content: candidate.content,
        parentVersion: input.incumbentVersion,
        createdBy: `cycle:${input.cycleId}`,
        metrics: input.metrics,
        note: `${candidate.strategy}: ${candidate.rationale}`,
        idempotencyKey: `deploy:${input.cycleId}`,
        labels: [{ label: "production", expectedVersion: input.incumbentVersion }],
        reason: `cycle ${input.cycleId} deployed candidate ${input.candidateId}`,
      });
      return { version: version.version };
    } catch (error) {
      if (error instanceof ConflictError) throw ApplicationFailure.nonRetryable(error.message, "LabelConflict");
      throw error;
    }
  }

  async function recordCycle(input: { cycleId: string; progress: CycleProgress }): Promise<void> {
    await store.cycles.update(input.cycleId, { phase: input.progress.phase, progress: { ...input.progress } });
  }

  async function finishCycle(input: {
    cycleId: string;
    agent: string;
    outcome: "deployed" | "kept" | "skipped" | "failed" | "cancelled";
    detail: string;
    result?: CycleResult;
  }): Promise<void> {
    await store.cycles.update(input.cycleId, {
      phase: "done",
      outcome: input.outcome,
      outcomeDetail: input.detail,
      ...(input.result ? { metrics: { ...input.result }, deployedVersion: input.result.deployedVersion } : {}),
      finished: true,
    });
    await store.cycles.releaseLease(input.agent, input.cycleId);
  }

  return { beginCycle, runAgentBatch, scoreRollouts, summarizeContenders, proposeCandidates, deployCandidate, recordCycle, finishCycle };
}

export function rolloutId(cycleId: string, phase: string, contender: string, taskId: string): string {
  return `ro-${createHash("sha256").update(`${cycleId}\u0000${phase}\u0000${contender}\u0000${taskId}`).digest("hex").slice(0, 24)}`;
}

function summarize(contender: string, rollouts: Rollout[]): ContenderScore {
  const rewards = rollouts.flatMap((rollout) => rollout.rewards.filter((reward) => reward.scorer === GROUND_TRUTH));
  const fieldTotals = new Map<string, { right: number; total: number }>();
  for (const reward of rewards) {
    for (const [field, correct] of Object.entries((reward.details.fields ?? {}) as Record<string, boolean>)) {
      const totals = fieldTotals.get(field) ?? { right: 0, total: 0 };
      totals.total++;
      if (correct) totals.right++;
      fieldTotals.set(field, totals);
    }
  }
  return {
    contender,
    rollouts: rollouts.length,
    failed: rollouts.filter((rollout) => rollout.status === "failed").length,
    meanReward: rewards.length > 0 ? rewards.reduce((sum, reward) => sum + reward.value, 0) / rewards.length : 0,
    fieldAccuracy: Object.fromEntries([...fieldTotals].map(([field, totals]) => [field, totals.right / totals.total])),
  };
}

/**
 * Groups rows into multi-row inserts: one statement per `size` rollouts (or per `maxDelayMs`) instead
 * of one per rollout. A worker dying between flushes loses only unflushed rollouts, which the retry
 * runs again because they are not stored.
 */
function batchedWriter<T>(write: (rows: T[]) => Promise<unknown>, size: number, maxDelayMs = 200) {
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

async function forEachConcurrently<T>(items: readonly T[], limit: number, signal: AbortSignal, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      signal.throwIfAborted();
      await work(items[next++]!);
    }
  });
  await Promise.all(lanes);
}

function nonRetryable<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    return rethrowNonRetryable(error);
  }
}

/** Unknown names and invalid input fail the same way on every attempt: fail the activity for good. */
function rethrowNonRetryable(error: unknown): never {
  if (error instanceof NotFoundError || error instanceof InvalidInputError) throw ApplicationFailure.nonRetryable(error.message, error.name);
  throw error;
}

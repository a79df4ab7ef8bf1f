import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowHandle, type WorkflowHandleWithFirstExecutionRunId } from "@temporalio/client";
import { algorithmRefusal } from "../activities/optimizer-contract.ts";
import type { AgentDefinition } from "../agents/types.ts";
import type { LoadedConfig } from "../config/load.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "../store/errors.ts";
import type { Store } from "../store/index.ts";
import type { trainingCycle } from "../workflows/training-cycle.ts";
import { type CycleInput, type CycleProgress, type CycleResult, PROGRESS_QUERY } from "../workflows/types.ts";
import { guardSettings } from "./canaries.ts";
import type { Runtime } from "./runtime.ts";
import type { RunningWorker } from "./worker.ts";

/** A polling worker picks a new workflow task up within milliseconds; waiting longer means there is none. */
const PICKUP_GRACE_MS = 3_000;

export function cycleSettings(config: LoadedConfig): CycleInput["settings"] {
  return {
    batchSize: config.cycle.batchSize,
    concurrency: config.cycle.concurrency,
    parallelBatches: config.cycle.parallelBatches,
    margin: config.cycle.margin,
    confidence: config.cycle.confidence,
    validationRepeats: config.cycle.validationRepeats,
    optimizer: {
      algorithm: config.optimizer.algorithm,
      candidates: config.optimizer.candidates,
      rounds: config.optimizer.rounds,
      beamWidth: config.optimizer.beamWidth,
      devFraction: config.optimizer.devFraction,
      minibatchSize: config.optimizer.minibatchSize,
      budget: config.optimizer.budget,
      seed: config.optimizer.seed,
      maxExamples: config.optimizer.maxExamples,
      maxKeywords: config.optimizer.maxKeywords,
      timeoutMinutes: config.optimizer.timeoutMinutes,
    },
    heartbeatTimeoutSeconds: 30,
    batchTimeoutMinutes: config.cycle.collectTimeoutMinutes,
    deploy: config.cycle.deploy,
    canaryWeight: config.cycle.canaryWeight,
    guard: guardSettings(config),
  };
}

/** The agent exists and the configured optimizer can change its prompt: checked before anything starts, so no cycle silently does nothing. */
export function cycleAgent(config: LoadedConfig, agentId: string): AgentDefinition {
  const agent = config.agents.get(agentId);
  const refusal = algorithmRefusal(agent, config.optimizer.algorithm);
  if (refusal) throw new InvalidInputError(`${refusal}. Choose another optimizer.algorithm (AGL_OPTIMIZER_ALGORITHM) or make the component editable.`);
  return agent;
}

/** The agent can be trained, and the data set exists (or ships with the agent) and belongs to it. */
export async function checkCycleTarget(store: Store, config: LoadedConfig, agentId: string, datasetName: string): Promise<AgentDefinition> {
  return checkDatasetTarget(store, cycleAgent(config, agentId), datasetName);
}

/** The data set exists (or ships with the agent) and belongs to it. */
export async function checkDatasetTarget(store: Store, agent: AgentDefinition, datasetName: string): Promise<AgentDefinition> {
  if (!(await store.datasets.exists(datasetName))) {
    if (!agent.datasets[datasetName]) await store.datasets.get(datasetName);
    return agent;
  }
  const dataset = await store.datasets.get(datasetName);
  if (dataset.agent !== agent.id) throw new NotFoundError(`Dataset "${dataset.name}" belongs to agent "${dataset.agent}", not "${agent.id}".`);
  return agent;
}

/** Cycle ids are workflow ids: readable in a log line and in the Temporal UI, unique per start. */
export function newCycleId(agent: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `cy-${agent}-${stamp}-${randomBytes(2).toString("hex")}`;
}

export type StartCycleOptions = StartCycleCommon & ({ dataset: string } | { trafficMs: number });

interface StartCycleCommon {
  config: LoadedConfig;
  store: Store;
  client: Client;
  agent: string;
  trigger?: string;
  settings?: Partial<CycleInput["settings"]>;
  cycleId?: string;
}

/**
 * Checks what can be checked before anything is written (the agent exists, the data set exists and
 * belongs to it, no cycle of this agent is running), then starts the workflow.
 */
export async function startCycle(options: StartCycleOptions): Promise<WorkflowHandleWithFirstExecutionRunId<typeof trainingCycle>> {
  const agent = "dataset" in options ? await checkCycleTarget(options.store, options.config, options.agent, options.dataset) : cycleAgent(options.config, options.agent);
  const holder = await options.store.cycles.leaseHolder(agent.id);
  if (holder && (await isRunning(options.client, holder))) {
    throw new ConflictError(`Cycle ${holder} is already running for agent ${agent.id}; one cycle per agent runs at a time. Follow it with: agl cycle status ${holder}`);
  }
  const input: CycleInput = {
    agent: agent.id,
    ...("dataset" in options ? { dataset: options.dataset } : { traffic: { windowMs: options.trafficMs, minScored: options.config.cycle.minTrafficRollouts } }),
    trigger: options.trigger ?? "manual",
    settings: { ...cycleSettings(options.config), ...options.settings },
  };
  const cycleId = options.cycleId ?? newCycleId(agent.id);
  try {
    const handle = await options.client.workflow.start<typeof trainingCycle>("trainingCycle", {
      taskQueue: options.config.temporal.taskQueue,
      workflowId: cycleId,
      args: [input],
    });
    // Listed (and cancellable) from now on, even before a worker picks it up.
    await options.store.cycles.create({ id: cycleId, agent: agent.id, dataset: input.dataset ?? null, trigger: input.trigger });
    return handle;
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) throw new ConflictError(`A cycle with id ${cycleId} already exists.`);
    throw error;
  }
}

export async function isRunning(client: Client, workflowId: string): Promise<boolean> {
  try {
    return (await client.workflow.getHandle(workflowId).describe()).status.name === "RUNNING";
  } catch (error) {
    if ((error as Error).name === "WorkflowNotFoundError") return false;
    throw error;
  }
}

/** Temporal lists a worker's pollers for minutes after the worker is gone, but an empty list proves there is none. */
export async function listsPollers(client: Client, config: LoadedConfig): Promise<boolean> {
  const response = await client.workflowService.describeTaskQueue({
    namespace: config.temporal.namespace,
    taskQueue: { name: config.temporal.taskQueue },
  });
  return (response.pollers?.length ?? 0) > 0;
}

/**
 * Whether a worker starts the workflow within the grace period. Asking the task queue for pollers is
 * not enough: Temporal keeps listing a worker's pollers for minutes after the worker is gone.
 */
export async function pickedUpWithin(handle: WorkflowHandle, graceMs: number): Promise<boolean> {
  const deadline = Date.now() + graceMs;
  for (;;) {
    const { raw } = await handle.describe();
    const pending = raw.pendingWorkflowTask;
    if (Number(raw.workflowExecutionInfo?.historyLength ?? 0) > 2 || (pending && pending.startedTime)) return true;
    if (raw.workflowExecutionInfo?.status !== undefined && raw.workflowExecutionInfo.status !== 1) return true;
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
}

/** Nobody else can run this process's workflows: the embedded server is ours (it stops when we exit), or the process owning it runs no worker. */
export function onlyWorkerHere(runtime: Runtime): boolean {
  return runtime.ownsEmbedded || (runtime.peer !== undefined && !runtime.peer.worker);
}

/** Whether a worker elsewhere runs the workflow: something polls the task queue and starts it within PICKUP_GRACE_MS. */
export async function pickedUpElsewhere(runtime: Runtime, handle: WorkflowHandle): Promise<boolean> {
  return (await listsPollers(runtime.temporal.client, runtime.config)) && (await pickedUpWithin(handle, PICKUP_GRACE_MS));
}

/** Runs a worker in this process, on the runtime's store and Temporal, and tells processes joining the data folder so. */
export async function startWorkerHere(runtime: Runtime): Promise<RunningWorker> {
  // Loaded on demand: the worker pulls in the Temporal worker SDK and Mastra (~0.8 s), which the other commands never need.
  const { startWorker } = await import("./worker.ts");
  const worker = await startWorker({ config: runtime.config, store: runtime.store, address: runtime.temporal.address });
  runtime.owner?.update({ worker: true });
  return worker;
}

/**
 * Starts a workflow and sees that a worker runs it: this process's own when nobody else can (the
 * embedded server is ours, or its owner runs no worker), or when nobody picks it up and the caller
 * waits. The caller stops the returned worker when done.
 */
export async function startWithWorker<H extends WorkflowHandle>(
  runtime: Runtime,
  what: string,
  wait: boolean,
  quiet: boolean,
  start: () => Promise<H>,
): Promise<{ handle: H; worker?: RunningWorker }> {
  let worker = onlyWorkerHere(runtime) ? await startWorkerHere(runtime) : undefined;
  try {
    const handle = await start();
    if (!worker && !(await pickedUpElsewhere(runtime, handle))) {
      const queue = `task queue "${runtime.config.temporal.taskQueue}"`;
      if (wait) {
        if (!quiet) process.stderr.write(`No worker is running the ${what} on ${queue}; running one in this process.\n`);
        worker = await startWorkerHere(runtime);
      } else {
        process.stderr.write(`No worker picked up the ${what} on ${queue}; it starts when one runs (agl worker), or use --wait to run one here.\n`);
      }
    }
    return { handle, ...(worker ? { worker } : {}) };
  } catch (error) {
    await worker?.stop();
    throw error;
  }
}

/**
 * The running cycle's progress, or undefined when nobody can answer: a query waits for a worker, and
 * without one it would wait for a minute, so it is cut short.
 */
export async function queryProgress(handle: WorkflowHandle, timeoutMs = 2_000): Promise<CycleProgress | undefined> {
  const answer = handle.query<CycleProgress>(PROGRESS_QUERY).catch(() => undefined);
  const timer = sleep(timeoutMs, undefined, { ref: false });
  return Promise.race([answer, timer]);
}

/** A failed cycle, told by the error that failed it (an activity's, the optimizer's, the agent's), not by Temporal's wrappers. */
export class CycleFailedError extends Error {
  override name = "CycleFailedError";
}

/** Polls the cycle's progress until it ends; returns its result or throws CycleFailedError with the root cause. */
export async function waitForCycle(handle: WorkflowHandle<typeof trainingCycle>, onProgress: (progress: CycleProgress) => void, pollMs = 500): Promise<CycleResult> {
  const result = handle.result();
  let finished = false;
  result.then(
    () => (finished = true),
    () => (finished = true),
  );
  while (!finished) {
    const progress = await queryProgress(handle);
    if (progress && !finished) onProgress(progress);
    await Promise.race([sleep(pollMs), result.catch(() => undefined)]);
  }
  return result.catch((error: unknown) => {
    if (error instanceof WorkflowFailedError) throw new CycleFailedError(`Cycle ${handle.workflowId} failed: ${rootCauseMessage(error)}`);
    throw error;
  });
}

/** The innermost error's message: Temporal wraps what failed (an activity's ApplicationFailure) in workflow and activity failures. */
export function rootCauseMessage(error: unknown): string {
  let current = error;
  while (current instanceof Error && current.cause instanceof Error) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

import { createHash } from "node:crypto";
import { type Client, WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from "@temporalio/client";
import { prepareAgent } from "../activities/cycle-activities.ts";
import type { AgentDefinition } from "../agents/types.ts";
import type { LoadedConfig } from "../config/load.ts";
import type { Task } from "../store/datasets.ts";
import { ConflictError } from "../store/errors.ts";
import type { Store } from "../store/index.ts";
import { generationOf, submissionDataset } from "../store/submissions.ts";
import type { processSubmission, SubmissionInput } from "../workflows/submission.ts";
import { checkDatasetTarget, cycleSettings } from "./cycles.ts";

export type SubmissionStatus =
  /** A new submission (or generation, with --again) was started. */
  | "started"
  /** The same tasks were submitted before: nothing new runs. */
  | "existing"
  /** Submitted before, but its workflow failed or is gone with tasks left: started again, running only what is missing. */
  | "resumed";

export interface Submission {
  submissionId: string;
  agent: string;
  dataset: string;
  tasks: number;
  generation: number;
  status: SubmissionStatus;
  /** The submission's workflow, unless it is gone (past Temporal's retention) with every rollout stored. */
  handle?: WorkflowHandle<typeof processSubmission>;
}

/**
 * The tasks of data set `name`, all splits, after the same checks as a cycle's (the agent exists, the
 * data set exists or ships with it, and belongs to it). Seeds a bundled data set on first use.
 */
export async function datasetTasks(store: Store, agent: AgentDefinition, name: string): Promise<Task[]> {
  await checkDatasetTarget(store, agent, name);
  await prepareAgent(store, agent, name);
  return store.datasets.allTasks(name);
}

/**
 * The first generation's submission id: the agent and a hash of the tasks (id, input, expected; key
 * order does not matter), so the same file or data set content submitted twice names the same submission.
 */
export function submissionBaseId(agent: string, tasks: readonly Task[]): string {
  const digest = createHash("sha256");
  for (const task of tasks) digest.update(`${canonicalJson({ id: task.id, input: task.input, expected: task.expected })}\n`);
  return `sub-${agent}-${digest.digest("hex").slice(0, 12)}`;
}

/**
 * Enqueues the tasks as one submission: stores them as the data set `submission-<id>` and starts the
 * workflow `processSubmission` with the submission id as workflow id. The same tasks submitted again
 * find the latest generation and run nothing; `again` makes the next generation (`<id>-g2`, …).
 */
export interface SubmitOptions {
  config: LoadedConfig;
  store: Store;
  client: Client;
  agent: AgentDefinition;
  tasks: Task[];
  /** Where the tasks came from, for `agl dataset list`. */
  source: string;
  again: boolean;
  /** Overrides the batch settings taken from the configuration (tests shorten the heartbeat timeout). */
  settings?: Partial<SubmissionInput["settings"]>;
}

export async function submitTasks(options: SubmitOptions): Promise<Submission> {
  const { store, agent, tasks } = options;
  const baseId = submissionBaseId(agent.id, tasks);
  for (;;) {
    const generations = await store.submissions.generations(baseId);
    const latest = generations.at(-1);
    if (latest && !options.again) return existing(options, latest, generationOf(latest, baseId));
    const generation = latest ? generationOf(latest, baseId) + 1 : 1;
    const submissionId = generation === 1 ? baseId : `${baseId}-g${generation}`;
    try {
      await store.datasets.importTasks({ name: submissionDataset(submissionId), agent: agent.id, source: options.source, tasks });
    } catch (error) {
      // Someone submitted the same tasks at the same moment: look again, and join theirs or take the next generation.
      if (error instanceof ConflictError) continue;
      throw error;
    }
    const handle = await start(options, submissionId);
    return { ...describe(submissionId, agent, tasks.length, generation), status: "started", handle };
  }
}

async function existing(options: SubmitOptions, submissionId: string, generation: number): Promise<Submission> {
  const base = describe(submissionId, options.agent, options.tasks.length, generation);
  const handle = options.client.workflow.getHandle<typeof processSubmission>(submissionId);
  const status = await handle.describe().then(
    (description) => description.status.name,
    (error: Error) => {
      if (error.name === "WorkflowNotFoundError") return undefined;
      throw error;
    },
  );
  if (status === "RUNNING" || status === "COMPLETED") return { ...base, status: "existing", handle };
  const { stored } = await options.store.submissions.storedRollouts(submissionId);
  if (status === undefined && stored >= options.tasks.length) return { ...base, status: "existing" };
  return { ...base, status: "resumed", handle: await start(options, submissionId) };
}

async function start(options: SubmitOptions, submissionId: string): Promise<WorkflowHandle<typeof processSubmission>> {
  const settings = cycleSettings(options.config);
  const input: SubmissionInput = {
    agent: options.agent.id,
    dataset: submissionDataset(submissionId),
    taskIds: options.tasks.map((task) => task.id),
    settings: {
      batchSize: settings.batchSize,
      concurrency: settings.concurrency,
      parallelBatches: settings.parallelBatches,
      batchTimeoutMinutes: settings.batchTimeoutMinutes,
      heartbeatTimeoutSeconds: settings.heartbeatTimeoutSeconds,
      ...options.settings,
    },
  };
  try {
    return await options.client.workflow.start<typeof processSubmission>("processSubmission", {
      taskQueue: options.config.temporal.taskQueue,
      workflowId: submissionId,
      args: [input],
      // A finished submission is never run twice under its id; a failed one may be resumed.
      workflowIdReusePolicy: "ALLOW_DUPLICATE_FAILED_ONLY",
    });
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    const handle = options.client.workflow.getHandle<typeof processSubmission>(submissionId);
    const { taskQueue } = await handle.describe();
    // The same tasks submitted to another deployment (another store) sharing this Temporal namespace.
    if (taskQueue !== options.config.temporal.taskQueue) {
      throw new ConflictError(`Submission ${submissionId} already exists in this Temporal namespace on task queue "${taskQueue}", not "${options.config.temporal.taskQueue}": pass --again for a new generation.`);
    }
    return handle;
  }
}

function describe(submissionId: string, agent: AgentDefinition, tasks: number, generation: number) {
  return { submissionId, agent: agent.id, dataset: submissionDataset(submissionId), tasks, generation };
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

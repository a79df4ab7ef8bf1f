import type { LanguageModelV2 } from "@ai-sdk/provider";
import { DefaultLogger, NativeConnection, Runtime, Worker } from "@temporalio/worker";
import { type ActivityDependencies, createCycleActivities } from "../activities/cycle-activities.ts";
import { createGepaActivities } from "../activities/gepa-activities.ts";
import { Client, Connection } from "@temporalio/client";
import { rootCauseMessage } from "./cycles.ts";
import { startWebhookDispatcher } from "./webhook-dispatcher.ts";
import { createCanaryActivities } from "../activities/canary-activities.ts";
import { createQueueActivities } from "../activities/queue-activities.ts";
import { createWebhookActivities } from "../activities/webhook-activities.ts";
import { createRollbackActivities } from "../activities/rollback-activities.ts";
import { createLanguageModel } from "../agents/models/index.ts";
import { type AgentRunner, createAgentRunner } from "../agents/runner.ts";
import { configuredModelInUse } from "../agents/models/configured.ts";
import type { LoadedConfig } from "../config/load.ts";
import { scoringContext } from "../scorers/registry.ts";
import type { Store } from "../store/index.ts";
import { agentBatchQueue } from "../workflows/task-queues.ts";
import { cachedWorkflowBundle } from "./workflow-bundle.ts";

let bundle: Promise<{ code: string }> | undefined;
let runtimeInstalled = false;

/** The workflow bundle, from the install's cache when the workflow sources have not changed; once per process. */
export function workflowBundle(): Promise<{ code: string }> {
  bundle ??= cachedWorkflowBundle({ logger: quietLogger() });
  return bundle;
}

/**
 * The SDK logs every worker state change at INFO; a CLI shows progress bars instead. What is logged is
 * one line: a failed workflow's root cause, not the whole error object with its stack.
 */
function quietLogger() {
  return new DefaultLogger("WARN", (entry) => {
    // The agent-batch worker has no workflows on purpose (they run on the main queue's worker).
    if (entry.message.startsWith("No workflows registered")) return;
    const meta = entry.meta ?? {};
    const failure = meta.error === undefined ? "" : `: ${rootCauseMessage(meta.error)}`;
    const subject = typeof meta.workflowId === "string" ? ` ${meta.workflowId}${typeof meta.workflowType === "string" ? ` (${meta.workflowType})` : ""}` : "";
    process.stderr.write(`${new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString()} [${entry.level}] ${entry.message}${subject}${failure}\n`);
  });
}

export function installQuietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  // Native (Rust core) logs go through the same logger, to stderr: stdout carries only --json output.
  Runtime.install({ logger: quietLogger(), telemetryOptions: { logging: { filter: { core: "WARN", other: "ERROR" }, forward: {} } } });
}

export interface WorkerOptions {
  config: LoadedConfig;
  store: Store;
  address: string;
  /** Overrides the configured model (tests use fakes). */
  model?: LanguageModelV2;
  /** A prebuilt bundle (tests bundle once per run, not once per file). */
  workflowBundle?: { codePath: string };
}

export interface RunningWorker {
  /** Settles when the worker stops; rejects if it stopped because of an error. */
  done: Promise<void>;
  stop(): Promise<void>;
}

/** Batches a worker with the local model takes at most when nothing says otherwise: it runs one model call at a time. */
const LOCAL_MODEL_BATCHES = 1;
/** ...and with a model elsewhere (an endpoint, the fake), whose calls wait on the network rather than on this machine. */
const REMOTE_MODEL_BATCHES = 64;

/**
 * How many agent batches this worker takes at once: `worker.maxBatches`, or what its model can run. The
 * local model runs one call at a time on this machine's CPU (`model.threads`), so a second batch would
 * only wait here while another worker could run it; a remote model's calls mostly wait on the network.
 */
export function maxAgentBatches(config: LoadedConfig): number {
  if (config.worker.maxBatches !== undefined) return config.worker.maxBatches;
  const runsLocalModel = config.model.provider === "local" && (configuredModelInUse() || config.agents.list().some((agent) => agent.runtime.kind === "model" && agent.runtime.model === null));
  return runsLocalModel ? LOCAL_MODEL_BATCHES : REMOTE_MODEL_BATCHES;
}

/**
 * The OpenAI-compatible endpoint APO critiques and edits with: the configured one, or offline the
 * configured agent model served on loopback for the length of one optimizer call.
 */
async function optimizerModel(config: LoadedConfig, store: Store) {
  const llm = config.optimizer.llm;
  const timeout_s = llm.timeoutSeconds;
  if (llm.baseUrl) {
    return { endpoint: { base_url: llm.baseUrl, model: llm.model ?? "default", api_key: llm.apiKey ?? null, timeout_s }, close: async () => {} };
  }
  const [{ createServerApp, startHttpServer }, { openAIRoutes }] = await Promise.all([import("../server/app.ts"), import("../server/routes/openai.ts")]);
  const http = await startHttpServer(createServerApp({ config, store }, [openAIRoutes]), { host: "127.0.0.1", port: 0 });
  const model = llm.model ?? config.model.name ?? config.model.provider;
  return { endpoint: { base_url: `${http.url}/v1`, model, api_key: config.server.token ?? null, timeout_s }, close: http.close };
}

/** Starts a worker polling the configured task queue and its agent-batch queue; `stop()` drains both and closes the connection. */
export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  installQuietRuntime();
  const connection = await NativeConnection.connect({ address: options.address });
  let model = options.model;
  const runners = new Map<string, AgentRunner>();
  const deps: ActivityDependencies = {
    config: options.config,
    store: options.store,
    optimizerModel: () => optimizerModel(options.config, options.store),
    runnerFor(agent) {
      let runner = runners.get(agent.id);
      if (!runner) {
        // Only an agent without a model of its own runs on the configured one.
        if (agent.runtime.kind === "model" && agent.runtime.model === null) model ??= createLanguageModel(options.config);
        runner = createAgentRunner(agent, model);
        runners.set(agent.id, runner);
      }
      return runner;
    },
    scoring: scoringContext(options.config),
  };
  const { runAgentBatch, ...cycleActivities } = createCycleActivities(deps);
  const { runQueueBatch } = createQueueActivities(deps);
  const { namespace, taskQueue } = options.config.temporal;
  const workers: Worker[] = [];
  try {
    workers.push(
      await Worker.create({
        connection,
        namespace,
        taskQueue,
        workflowBundle: options.workflowBundle ?? (await workflowBundle()),
        activities: {
          ...cycleActivities,
          ...createGepaActivities(deps),
          ...createCanaryActivities(deps),
          ...createRollbackActivities({ store: options.store, config: options.config }),
          ...createWebhookActivities({ store: options.store, config: options.config }),
        },
        // Bookkeeping, scoring and the optimizer: short, or waiting on a child process.
        maxConcurrentActivityTaskExecutions: 64,
      }),
    );
    // Agent batches come from a queue of their own, as many at once as the model can run: a worker
    // with no room leaves the next batch to another worker.
    workers.push(
      await Worker.create({
        connection,
        namespace,
        taskQueue: agentBatchQueue(taskQueue),
        activities: { runAgentBatch, runQueueBatch },
        maxConcurrentActivityTaskExecutions: maxAgentBatches(options.config),
      }),
    );
  } catch (error) {
    // A created worker lets go of the connection only once it has run and stopped.
    await Promise.all(workers.map((worker) => Promise.all([worker.run(), worker.shutdown()])));
    await connection.close();
    throw error;
  }
  // Every worker hands the outbox's audit events to the configured webhooks (dispatchers may race safely).
  const clientConnection = await Connection.connect({ address: options.address }).catch(async (error: unknown) => {
    await Promise.all(workers.map((worker) => Promise.all([worker.run(), worker.shutdown()])));
    await connection.close();
    throw error;
  });
  const stopAll = () => {
    for (const worker of workers) if (worker.getState() === "RUNNING") worker.shutdown();
  };
  const dispatcher = startWebhookDispatcher({ config: options.config, store: options.store, client: new Client({ connection: clientConnection, namespace }) });
  // One stopping (an error) stops the other: a worker that polls only one of the queues would stall cycles.
  const done = Promise.all(workers.map((worker) => worker.run().finally(stopAll)))
    .then(() => undefined)
    .finally(async () => {
      await dispatcher.stop();
      await clientConnection.close();
      await connection.close();
    });
  return {
    done,
    async stop() {
      stopAll();
      await done;
    },
  };
}

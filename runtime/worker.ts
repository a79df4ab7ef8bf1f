import { fileURLToPath } from "node:url";
import type { LanguageModelV2 } from "@ai-sdk/provider";
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from "@temporalio/worker";
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
import type { LoadedConfig } from "../config/load.ts";
import { scoringContext } from "../scorers/registry.ts";
import type { Store } from "../store/index.ts";

const WORKFLOWS_PATH = fileURLToPath(new URL("../workflows/index.ts", import.meta.url));

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
let runtimeInstalled = false;

/** Bundling takes a second or two: do it once per process, however many workers it creates. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger() });
  return bundle;
}

/**
 * The SDK logs every worker state change at INFO; a CLI shows progress bars instead. What is logged is
 * one line: a failed workflow's root cause, not the whole error object with its stack.
 */
function quietLogger() {
  return new DefaultLogger("WARN", (entry) => {
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
  worker: Worker;
  /** Settles when the worker stops; rejects if it stopped because of an error. */
  done: Promise<void>;
  stop(): Promise<void>;
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

/** Starts a worker polling the configured task queue; `stop()` drains it and closes its connection. */
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
  const activities = {
    ...createCycleActivities(deps),
    ...createGepaActivities(deps),
    ...createQueueActivities(deps),
    ...createCanaryActivities(deps),
    ...createRollbackActivities({ store: options.store, config: options.config }),
    ...createWebhookActivities({ store: options.store, config: options.config }),
  };
  let worker: Worker;
  try {
    worker = await Worker.create({
      connection,
      namespace: options.config.temporal.namespace,
      taskQueue: options.config.temporal.taskQueue,
      workflowBundle: options.workflowBundle ?? (await workflowBundle()),
      activities,
      // Agent runs are I/O-bound for remote models and queued for the local one; each batch bounds its own concurrency.
      maxConcurrentActivityTaskExecutions: 64,
    });
  } catch (error) {
    await connection.close();
    throw error;
  }
  // Every worker hands the outbox's audit events to the configured webhooks (dispatchers may race safely).
  const clientConnection = await Connection.connect({ address: options.address }).catch(async (error: unknown) => {
    await connection.close();
    throw error;
  });
  const dispatcher = startWebhookDispatcher({ config: options.config, store: options.store, client: new Client({ connection: clientConnection, namespace: options.config.temporal.namespace }) });
  const done = worker.run().finally(async () => {
    await dispatcher.stop();
    await clientConnection.close();
    await connection.close();
  });
  return {
    worker,
    done,
    async stop() {
      if (worker.getState() === "RUNNING") worker.shutdown();
      await done;
    },
  };
}

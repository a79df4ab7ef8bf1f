import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LanguageModelV2 } from "@ai-sdk/provider";
import { Client, Connection } from "@temporalio/client";
import { afterEach, beforeEach, inject } from "vitest";
import { bundledAgents } from "../../agents/examples.ts";
import type { AgentDefinition } from "../../agents/types.ts";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { type LoadedConfig, loadConfig } from "../../config/load.ts";
import { type RunningWorker, startWorker } from "../../runtime/worker.ts";
import type { Store } from "../../store/index.ts";
import { openTestStore, type TestStore } from "./stores.ts";

/** A configuration for one test: the shared dev server, a task queue of its own, a fresh data folder. */
export function testConfig(overrides: Record<string, unknown> = {}, agents: readonly AgentDefinition[] = bundledAgents): LoadedConfig {
  return loadConfig({
    env: {},
    agents,
    overrides: {
      dataDir: mkdtempSync(join(tmpdir(), "agl-data-")),
      temporal: { address: inject("temporalAddress"), taskQueue: `test-${randomBytes(4).toString("hex")}` },
      model: { provider: "fake" },
      ...overrides,
    },
  });
}

export async function connectClient(config: LoadedConfig): Promise<{ client: Client; close(): Promise<void> }> {
  const connection = await Connection.connect({ address: config.temporal.address! });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), close: () => connection.close() };
}

export function startTestWorker(config: LoadedConfig, store: Store, model: LanguageModelV2 = fakeKeywordModel()): Promise<RunningWorker> {
  return startWorker({ config, store, address: config.temporal.address!, model, workflowBundle: { codePath: inject("workflowBundlePath") } });
}

/**
 * Per test: a fresh PGlite store (`db()`), and `start(config)` connecting a client and starting a worker on
 * it; the worker, the client and the store are closed after each test.
 */
export function workerPerTest() {
  let db: TestStore | undefined;
  let worker: RunningWorker | undefined;
  let temporal: Awaited<ReturnType<typeof connectClient>> | undefined;
  beforeEach(async () => {
    db = await openTestStore("pglite");
  });
  afterEach(async () => {
    await worker?.stop();
    await temporal?.close();
    await db?.close();
    worker = temporal = db = undefined;
  });
  return {
    db: () => db!,
    async start(config: LoadedConfig, model?: LanguageModelV2): Promise<Client> {
      temporal = await connectClient(config);
      worker = await startTestWorker(config, db!.store, model);
      return temporal.client;
    },
  };
}

// Benchmark: does a second worker speed a cycle up? One Temporal dev server and one PostgreSQL, as a
// user scaling out has them (TEMPORAL_ADDRESS, DATABASE_URL), and the local model (SmolLM2 on
// llama.cpp, 1 thread) in one `agl worker` process, then in two. Each run gets an empty database and a
// task queue of its own. The workflow history says which worker started each agent batch.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ResultPromise } from "execa";
import { readDatasetFile } from "../agents/dataset-file.ts";
import { bundledAgents } from "../agents/examples.ts";
import { postAnalyzer } from "../agents/post-analyzer/index.ts";
import { loadConfig } from "../config/load.ts";
import { installPath } from "../config/paths.ts";
import { startCycle } from "../runtime/cycles.ts";
import { openRuntime } from "../runtime/runtime.ts";
import { startDevServer } from "../runtime/temporal-dev-server.ts";
import { startsByWorker } from "../test/support/history.ts";
import { createScratchDatabase } from "../test/support/scratch-database.ts";
import { activitySpans, coveredMs, spawnWorker } from "./cycle-throughput.ts";

const TRAIN = 40;
const VALIDATION = 20;
/** Small batches, several in flight: enough of them for two workers to share, the same layout for one. */
const SETTINGS = { batchSize: 5, parallelBatches: 4, concurrency: 1 };

export interface ScaleOutRun {
  workers: number;
  wallMs: number;
  modelCalls: number;
  /** Agent batches each worker started, in the order the workers were spawned. */
  batchesByWorker: number[];
  /** While at least one agent batch ran, and the sum of every batch's own time (scheduled to completed, from the history). */
  batchesMs: number;
  batchTimeMs: number;
  outcome: string;
}

export async function benchScaleOut(adminUrl: string, workerCounts: number[]): Promise<ScaleOutRun[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "agl-bench-scale-"));
  const temporal = await startDevServer({ cli: installPath(".venv/bin/temporal"), namespace: "default" });
  const posts = await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer);
  const tasks = Array.from({ length: TRAIN + VALIDATION }, (_, index) => ({
    ...posts[index % posts.length]!,
    id: `scale-${String(index + 1).padStart(3, "0")}`,
    split: index < TRAIN ? ("train" as const) : ("validation" as const),
  }));
  const measured: ScaleOutRun[] = [];
  try {
    for (const [index, workerCount] of workerCounts.entries()) {
      const scratch = await createScratchDatabase(adminUrl, "agl_bench_scale");
      const env = {
        AGL_DATA_DIR: dataDir,
        DATABASE_URL: scratch.url,
        TEMPORAL_ADDRESS: temporal.address,
        AGL_TASK_QUEUE: `scale-${index}`,
        AGL_MODEL: "local",
        AGL_MODEL_THREADS: "1",
      };
      const config = loadConfig({ env, agents: bundledAgents });
      const runtime = await openRuntime(config, { store: true, temporal: true, command: "npm run bench -- scale" });
      const children: ResultPromise[] = [];
      try {
        await runtime.store.datasets.importTasks({ name: "scale", agent: postAnalyzer.id, source: "bench", tasks, replace: true });
        for (let worker = 0; worker < workerCount; worker++) children.push((await spawnWorker(env)).child);
        const started = performance.now();
        const handle = await startCycle({ config, store: runtime.store, client: runtime.temporal.client, agent: postAnalyzer.id, dataset: "scale", settings: SETTINGS });
        const result = await handle.result();
        const wallMs = performance.now() - started;
        // A worker's identity is pid@host.
        const starts = await startsByWorker(handle, "runAgentBatch");
        const batchesByWorker = children.map((child) => [...starts].filter(([identity]) => identity.startsWith(`${child.pid}@`)).reduce((sum, [, count]) => sum + count, 0));
        const batches = (await activitySpans(handle)).filter((span) => span.name === "runAgentBatch");
        const batchTimeMs = batches.reduce((sum, span) => sum + span.to - span.from, 0);
        measured.push({ workers: workerCount, wallMs, modelCalls: await runtime.store.rollouts.countForCycle(handle.workflowId), batchesByWorker, batchesMs: coveredMs(batches), batchTimeMs, outcome: result.detail });
      } finally {
        for (const child of children) child.kill("SIGTERM");
        await Promise.allSettled(children);
        await runtime.close();
        await scratch.drop();
      }
    }
    return measured;
  } finally {
    await temporal.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

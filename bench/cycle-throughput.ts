// Benchmark: how close a training cycle gets to its ideal wall time.
// 200 train + 100 validation tasks, a fake model answering in a fixed 50 ms, 16 agent runs in flight.
// Ideal = model time / concurrency + the optimizer's own time; what is above that is ours
// (Temporal round trips, Mastra, the store, scoring, and the CPU all of them share).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { forEachConcurrently } from "../activities/agent-batch.ts";
import { readDatasetFile } from "../agents/dataset-file.ts";
import { bundledAgents } from "../agents/examples.ts";
import { fakeKeywordModel } from "../agents/models/fake-keyword.ts";
import { postAnalyzer } from "../agents/post-analyzer/index.ts";
import { createAgentRunner } from "../agents/runner.ts";
import { loadConfig } from "../config/load.ts";
import { startCycle } from "../runtime/cycles.ts";
import { openRuntime } from "../runtime/runtime.ts";
import { startWorker } from "../runtime/worker.ts";
import type { Task } from "../store/datasets.ts";
import { createScratchDatabase } from "../test/support/scratch-database.ts";

const TRAIN = 200;
const VALIDATION = 100;
const MODEL_LATENCY_MS = 50;
const CONCURRENCY = 16;
const AGL = fileURLToPath(new URL("../bin/agl.js", import.meta.url));
const AGENT_PIPELINE = fileURLToPath(new URL("./agent-pipeline.ts", import.meta.url));
const NODE = process.execPath;

/**
 * Cycles this process has run with its in-process worker. Mastra's pipeline costs 2.3–2.8 ms of CPU a
 * call in a fresh process and 1.2–1.4 ms once its code is warm (`benchAgentPipeline`), so a row says which.
 */
let inProcessCycles = 0;

export interface CycleBenchOptions {
  batchSize: number;
  parallelBatches: number;
  /** 0: the worker runs inside the benchmark process; n: n `agl worker` processes share the cycle. */
  workerProcesses: number;

  databaseUrl?: string;
}

export interface CycleBenchResult {
  store: string;
  layout: string;
  workers: string;
  wallMs: number;
  modelCalls: number;
  optimizerMs: number;
  idealMs: number;
  /** While at least one agent batch ran (scheduled to completed, from the history). */
  batchesMs: number;
  /** While other activities than the batches and the optimizer ran and no batch did: bookkeeping, scoring, summaries. */
  otherActivitiesMs: number;
  ratio: number;
  rolloutsPerSecond: number;
  outcome: string;
}

/** 300 tasks cut from the bundled posts (repeated under new ids: the benchmark needs volume, not variety). */
async function benchTasks(): Promise<Task[]> {
  const posts = await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer);
  return Array.from({ length: TRAIN + VALIDATION }, (_, index) => ({
    ...posts[index % posts.length]!,
    id: `bench-${String(index + 1).padStart(3, "0")}`,
    split: index < TRAIN ? ("train" as const) : ("validation" as const),
  }));
}

export async function benchCycleThroughput(options: CycleBenchOptions): Promise<CycleBenchResult> {
  const dataDir = mkdtempSync(join(tmpdir(), "agl-bench-"));
  // Every PostgreSQL run starts from an empty database, as every PGlite run starts from an empty folder.
  const scratch = options.databaseUrl ? await createScratchDatabase(options.databaseUrl, "agl_bench_cycle") : undefined;
  const env = {
    AGL_DATA_DIR: dataDir,
    AGL_MODEL: "fake",
    AGL_MODEL_LATENCY_MS: String(MODEL_LATENCY_MS),
    AGL_TASK_QUEUE: "bench",
    ...(scratch ? { DATABASE_URL: scratch.url } : {}),
  };
  const config = loadConfig({ env, agents: bundledAgents });
  // The benchmark process owns the embedded store and Temporal server, exactly as `agl up` would.
  const runtime = await openRuntime(config, { store: true, temporal: true, command: "npm run bench" });
  const children: ResultPromise[] = [];
  let inProcess: Awaited<ReturnType<typeof startWorker>> | undefined;
  try {
    await runtime.store.datasets.importTasks({ name: "bench", agent: postAnalyzer.id, source: "bench", tasks: await benchTasks(), replace: true });
    if (options.workerProcesses === 0) {
      // AGL_MODEL=fake at AGL_MODEL_LATENCY_MS: the configured model, as an `agl worker` process builds it.
      inProcess = await startWorker({ config, store: runtime.store, address: runtime.temporal.address });
    } else {
      // They find this process's store and Temporal server through the shared data folder.
      for (let index = 0; index < options.workerProcesses; index++) children.push((await spawnWorker(env)).child);
    }
    const concurrency = CONCURRENCY / options.parallelBatches;
    const started = performance.now();
    const handle = await startCycle({
      config,
      store: runtime.store,
      client: runtime.temporal.client,
      agent: postAnalyzer.id,
      dataset: "bench",
      settings: { batchSize: options.batchSize, parallelBatches: options.parallelBatches, concurrency },
    });
    const result = await handle.result();
    const warmth = inProcessCycles === 0 ? "the process's first cycle" : `warm: ${inProcessCycles} cycle${inProcessCycles === 1 ? "" : "s"} ran here before`;
    if (options.workerProcesses === 0) inProcessCycles++;
    const wallMs = performance.now() - started;
    const spans = await activitySpans(handle);
    const optimizerMs = coveredMs(spans.filter((span) => span.name === "proposeCandidates"));
    const batchesMs = coveredMs(spans.filter((span) => span.name === "runAgentBatch"));
    const otherActivitiesMs = coveredMs(spans) - batchesMs - optimizerMs;
    const modelCalls = await runtime.store.rollouts.countForCycle(handle.workflowId);
    const idealMs = (modelCalls * MODEL_LATENCY_MS) / CONCURRENCY + optimizerMs;
    return {
      store: options.databaseUrl ? "PostgreSQL" : "PGlite (embedded)",
      layout: `${options.parallelBatches} batches x ${concurrency} runs, at most ${options.batchSize} tasks/batch`,
      workers: options.workerProcesses === 0 ? `1 (in process, ${warmth})` : `${options.workerProcesses} agl worker processes`,
      wallMs,
      modelCalls,
      optimizerMs,
      idealMs,
      batchesMs,
      otherActivitiesMs,
      ratio: wallMs / idealMs,
      rolloutsPerSecond: modelCalls / (wallMs / 1000),
      outcome: result.detail,
    };
  } finally {
    await inProcess?.stop();
    for (const child of children) child.kill("SIGTERM");
    await Promise.allSettled(children);
    await runtime.close();
    await scratch?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export interface AgentPipelineRound {
  calls: number;
  cpuMsPerCall: number;
  callsPerSecond: number;
  /** How much of one core the pipeline alone needs with the cycle's runs in flight and model latency. */
  coreShareAtCycleLoad: number;
}

/**
 * Mastra's agent pipeline alone: the post analyzer through `createAgentRunner` (as a batch runs it) on the
 * fake model at 0 ms, 16 calls in flight, in rounds of `calls`. A worker's batches run their calls on its
 * main thread, so the CPU per call bounds the cycle. In a fresh process (`freshAgentPipeline`), the first
 * round is what a cycle's fresh worker pays; later rounds show how far the JIT brings it down.
 */
export async function benchAgentPipeline(rounds = 3, calls = 640): Promise<AgentPipelineRound[]> {
  const runner = createAgentRunner(postAnalyzer, fakeKeywordModel());
  const tasks = await benchTasks();
  const results: AgentPipelineRound[] = [];
  for (let round = 0; round < rounds; round++) {
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await forEachConcurrently(Array.from({ length: calls }, (_, index) => tasks[index % tasks.length]!), CONCURRENCY, undefined, async (task) => {
      const run = await runner(task.input, postAnalyzer.prompt.seed);
      if (run.status !== "succeeded") throw new Error(`The agent pipeline benchmark's run of ${task.id} failed: ${run.error}`);
    });
    const wallMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    const cpuMsPerCall = (cpu.user + cpu.system) / 1000 / calls;
    results.push({ calls, cpuMsPerCall, callsPerSecond: calls / (wallMs / 1000), coreShareAtCycleLoad: (cpuMsPerCall * CONCURRENCY) / MODEL_LATENCY_MS });
  }
  return results;
}

/** `benchAgentPipeline` in a process of its own (bench/agent-pipeline.ts), so nothing has warmed it up. */
export async function freshAgentPipeline(): Promise<AgentPipelineRound[]> {
  const { stdout } = await execa(NODE, [AGENT_PIPELINE], { stdin: "ignore" });
  // The last line: anything a library logs to stdout comes before it.
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as AgentPipelineRound[];
}

/** An `agl worker` process, as a user would start one; resolves once it polls (wrapped: an execa child is a thenable of its exit). */
export async function spawnWorker(env: Record<string, string>): Promise<{ child: ResultPromise }> {
  // Not the benchmark's own DATABASE_URL or TEMPORAL_ADDRESS: only what `env` says (a PGlite run's workers join this process's store).
  const { DATABASE_URL: _ignored, TEMPORAL_ADDRESS: _alsoIgnored, ...inherited } = process.env;
  const child = execa(NODE, [AGL, "worker"], { env: { ...inherited, ...env }, extendEnv: false, reject: false, stdout: "ignore", stderr: "pipe" });
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on("data", (chunk: Buffer) => chunk.toString().includes("Worker polling") && resolve());
    void child.then((result) => reject(new Error(`agl worker exited: ${result.stderr}`)));
  });
  return { child };
}

type HistoryEvent = {
  eventId?: { toString(): string } | null;
  eventTime?: { seconds?: { toString(): string } | null; nanos?: number | null } | null;
  activityTaskScheduledEventAttributes?: { activityType?: { name?: string | null } | null } | null;
  activityTaskCompletedEventAttributes?: { scheduledEventId?: { toString(): string } | null } | null;
};

/** Each activity of the workflow history: its type and when it was first scheduled and completed (retries included). */
export async function activitySpans(handle: { fetchHistory(): Promise<{ events?: unknown[] | null }> }): Promise<{ name: string; from: number; to: number }[]> {
  const events = ((await handle.fetchHistory()).events ?? []) as HistoryEvent[];
  const millis = (event: HistoryEvent) => Number(event.eventTime?.seconds?.toString() ?? 0) * 1000 + (event.eventTime?.nanos ?? 0) / 1e6;
  const scheduled = new Map(events.filter((event) => event.activityTaskScheduledEventAttributes).map((event) => [event.eventId?.toString(), event]));
  return events.flatMap((event) => {
    const from = scheduled.get(event.activityTaskCompletedEventAttributes?.scheduledEventId?.toString());
    return from ? [{ name: from.activityTaskScheduledEventAttributes!.activityType?.name ?? "", from: millis(from), to: millis(event) }] : [];
  });
}

/** How long at least one of the spans ran (overlaps counted once). */
export function coveredMs(spans: { from: number; to: number }[]): number {
  let covered = 0;
  let reached = -Infinity;
  for (const span of [...spans].sort((a, b) => a.from - b.from)) {
    if (span.to > reached) covered += span.to - Math.max(span.from, reached);
    reached = Math.max(reached, span.to);
  }
  return covered;
}

// Benchmark: OTLP spans per second accepted and stored by POST /v1/traces, by spans per request.
// The server runs in its own process (bench/otlp-server.ts) over the embedded PGlite or a scratch PostgreSQL
// database; this process only sends protobuf bodies serialized beforehand, a few requests in flight like
// several exporters.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { execa } from "execa";
import { postAnalyzer } from "../agents/post-analyzer/index.ts";
import { renderPrompt } from "../agents/prompt-template.ts";
import { createScratchDatabase } from "../test/support/scratch-database.ts";
import { recordMastraRun, recordSpans, type SpanAttributes } from "../test/support/otlp.ts";

const SERVER = fileURLToPath(new URL("./otlp-server.ts", import.meta.url));
export const IN_FLIGHT = 4;
/** Spans sent per batch size: enough requests that per-request costs show, few enough to finish in seconds. */
export const SPANS_PER_RUN: Record<number, number> = { 1: 2_000, 64: 8_192, 512: 16_384 };

export interface OtlpBenchOptions {
  batchSize: number;
  /** A PostgreSQL role that may create databases: the run gets a scratch database. Else the embedded PGlite. */
  databaseUrl?: string;
}

export interface OtlpBenchResult {
  store: string;
  batchSize: number;
  requests: number;
  spans: number;
  stored: number;
  rollouts: number;
  wallMs: number;
  spansPerSecond: number;
  requestMs: { p50: number; p99: number };
}

/**
 * Mastra agent runs as @mastra/otel-exporter 1.4 emits them (invoke_agent → model_generation → agent_step →
 * chat), cut into requests in the order spans end (children first). `runAttributes(run)` adds attributes to
 * every span of a run, e.g. the Agent Lightning rollout it belongs to.
 */
export function requestBodies(batchSize: number, spanCount: number, runAttributes: (run: number) => SpanAttributes = () => ({})): Uint8Array[] {
  const instructions = renderPrompt(postAnalyzer.prompt.seed);
  const tag = Date.now();
  const spans: ReadableSpan[] = recordSpans({ "service.name": "otlp-bench" }, (tracer) => {
    for (let run = 0; run < spanCount / 4; run++) {
      recordMastraRun(tracer, {
        agent: postAnalyzer.id,
        userMessage: postAnalyzer.message({ content: `Benchmark post ${tag}-${run}: we shipped the new onboarding flow and users love it.` }),
        answer: { category: "product_management", sentiment: "positive" },
        instructions,
        startMs: Date.now() - 60_000 + run,
        latencyMs: 40,
        tokens: { input: 180, output: 9 },
        metadata: { "mastra.metadata.promptVersion": 1, ...runAttributes(run) },
      });
    }
  });
  const bodies: Uint8Array[] = [];
  for (let start = 0; start < spans.length; start += batchSize) bodies.push(ProtobufTraceSerializer.serializeRequest(spans.slice(start, start + batchSize))!);
  return bodies;
}

/** Sends every body to `url`, IN_FLIGHT at a time; each must be answered 200 without rejections. */
export async function sendBodies(url: string, bodies: readonly Uint8Array[]): Promise<{ wallMs: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const began = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        const sent = performance.now();
        const response = await fetch(url, { method: "POST", headers: { "content-type": "application/x-protobuf" }, body });
        const bytes = new Uint8Array(await response.arrayBuffer());
        const answer = bytes.length > 0 ? ProtobufTraceSerializer.deserializeResponse(bytes) : {};
        if (response.status !== 200 || answer.partialSuccess) throw new Error(`${url} refused spans: ${response.status} ${JSON.stringify(answer)}`);
        latencies.push(performance.now() - sent);
      }
    }),
  );
  return { wallMs: performance.now() - began, latencies };
}

export interface IngestServer {
  store: string;
  url: string;
  /** Spans and OTLP rollouts stored so far. */
  totals(): Promise<{ spans: number; rollouts: number }>;
  stop(): Promise<void>;
}

/** `agl up`'s OTLP route in a process of its own, over a new PGlite data folder or a scratch PostgreSQL database. */
export async function startIngestServer(databaseUrl?: string): Promise<IngestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "agl-bench-otlp-"));
  const scratch = databaseUrl ? await createScratchDatabase(databaseUrl, "agl_bench_otlp") : undefined;
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", AGL_DATA_DIR: dataDir, ...(scratch ? { DATABASE_URL: scratch.url } : {}) };
  const server = execa(process.execPath, [SERVER], { env, extendEnv: false, stdin: "pipe", stdout: "pipe", stderr: "inherit", reject: false });
  const lines = server.stdout!.setEncoding("utf8")[Symbol.asyncIterator]();
  const nextLine = async <T>(): Promise<T> => {
    const line = await lines.next();
    if (line.done) throw new Error(`The OTLP bench server exited: ${JSON.stringify(await server)}`);
    return JSON.parse(String(line.value)) as T;
  };
  const stop = async () => {
    server.kill("SIGTERM");
    await server;
    await scratch?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const { url } = await nextLine<{ url: string }>();
    return {
      store: databaseUrl ? "PostgreSQL" : "PGlite (embedded)",
      url: `${url}/v1/traces`,
      async totals() {
        server.stdin!.write("totals\n");
        return (await nextLine<{ totals: { spans: number; rollouts: number } }>()).totals;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export async function benchOtlpIngest(options: OtlpBenchOptions): Promise<OtlpBenchResult> {
  const spanCount = SPANS_PER_RUN[options.batchSize] ?? options.batchSize * 32;
  const bodies = requestBodies(options.batchSize, spanCount);
  const server = await startIngestServer(options.databaseUrl);
  try {
    const before = await server.totals();
    const { wallMs, latencies } = await sendBodies(server.url, bodies);
    const after = await server.totals();
    latencies.sort((a, b) => a - b);
    return {
      store: server.store,
      batchSize: options.batchSize,
      requests: bodies.length,
      spans: spanCount,
      stored: after.spans - before.spans,
      rollouts: after.rollouts - before.rollouts,
      wallMs,
      spansPerSecond: spanCount / (wallMs / 1000),
      requestMs: { p50: latencies[Math.floor(latencies.length / 2)]!, p99: latencies[Math.floor(latencies.length * 0.99)]! },
    };
  } finally {
    await server.stop();
  }
}

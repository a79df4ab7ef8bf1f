// Benchmark: OTLP spans per second accepted and stored by POST /v1/traces, by spans per request.
// The server runs in its own process (bench/otlp-server.ts) over the embedded PGlite or PostgreSQL; this
// process only sends protobuf bodies serialized beforehand, a few requests in flight like several exporters.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { execa } from "execa";
import { postAnalyzer } from "../agents/post-analyzer/index.ts";
import { renderPrompt } from "../agents/prompt-template.ts";
import { recordMastraRun, recordSpans } from "../test/support/otlp.ts";

const SERVER = fileURLToPath(new URL("./otlp-server.ts", import.meta.url));
const IN_FLIGHT = 4;
/** Spans sent per batch size: enough requests that per-request costs show, few enough to finish in seconds. */
const SPANS_PER_RUN: Record<number, number> = { 1: 2_000, 64: 8_192, 512: 16_384 };

export interface OtlpBenchOptions {
  batchSize: number;
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

/** Mastra agent runs as @mastra/otel-exporter 1.4 emits them (invoke_agent → model_generation → agent_step → chat), cut into requests in the order spans end. */
function requestBodies(batchSize: number, spanCount: number): Uint8Array[] {
  const instructions = renderPrompt(postAnalyzer.prompt.seed);
  const spans: ReadableSpan[] = recordSpans({ "service.name": "otlp-bench" }, (tracer) => {
    for (let run = 0; run < spanCount / 4; run++) {
      recordMastraRun(tracer, {
        agent: postAnalyzer.id,
        userMessage: postAnalyzer.message({ content: `Benchmark post ${run}: we shipped the new onboarding flow and users love it.` }),
        answer: { category: "product_management", sentiment: "positive" },
        instructions,
        startMs: Date.now() - 60_000 + run,
        latencyMs: 40,
        tokens: { input: 180, output: 9 },
        metadata: { "mastra.metadata.promptVersion": 1 },
      });
    }
  });
  const bodies: Uint8Array[] = [];
  for (let start = 0; start < spans.length; start += batchSize) bodies.push(ProtobufTraceSerializer.serializeRequest(spans.slice(start, start + batchSize))!);
  return bodies;
}

export async function benchOtlpIngest(options: OtlpBenchOptions): Promise<OtlpBenchResult> {
  const spanCount = SPANS_PER_RUN[options.batchSize] ?? options.batchSize * 32;
  const bodies = requestBodies(options.batchSize, spanCount);
  const dataDir = mkdtempSync(join(tmpdir(), "agl-bench-otlp-"));
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", AGL_DATA_DIR: dataDir, ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}) };
  const server = execa(process.execPath, [SERVER], { env, extendEnv: false, stdout: "pipe", stderr: "inherit", reject: false });
  const lines = server.stdout!.setEncoding("utf8")[Symbol.asyncIterator]();
  try {
    const started = JSON.parse(String((await lines.next()).value)) as { url: string; totals: { spans: number; rollouts: number } };
    const latencies: number[] = [];
    let next = 0;
    const began = performance.now();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < bodies.length) {
          const body = bodies[next++]!;
          const sent = performance.now();
          const response = await fetch(`${started.url}/v1/traces`, { method: "POST", headers: { "content-type": "application/x-protobuf" }, body });
          const answer = ProtobufTraceSerializer.deserializeResponse(new Uint8Array(await response.arrayBuffer()));
          if (response.status !== 200 || answer.partialSuccess) throw new Error(`The server refused spans: ${response.status} ${JSON.stringify(answer)}`);
          latencies.push(performance.now() - sent);
        }
      }),
    );
    const wallMs = performance.now() - began;
    server.kill("SIGTERM");
    const finished = JSON.parse(String((await lines.next()).value)) as { totals: { spans: number; rollouts: number } };
    latencies.sort((a, b) => a - b);
    return {
      store: options.databaseUrl ? "PostgreSQL" : "PGlite (embedded)",
      batchSize: options.batchSize,
      requests: bodies.length,
      spans: spanCount,
      stored: finished.totals.spans - started.totals.spans,
      rollouts: finished.totals.rollouts - started.totals.rollouts,
      wallMs,
      spansPerSecond: spanCount / (wallMs / 1000),
      requestMs: { p50: latencies[Math.floor(latencies.length / 2)]!, p99: latencies[Math.floor(latencies.length * 0.99)]! },
    };
  } finally {
    server.kill("SIGTERM");
    await server;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

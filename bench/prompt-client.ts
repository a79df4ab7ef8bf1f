// Benchmark: how fast an agent gets its prompt. The client's cached `get` (what every agent run
// pays), and the resources endpoint of a real `agl up` (embedded PGlite) under 16 keep-alive
// connections for 10 s, both full answers (200) and revalidations (If-None-Match, 304).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { postAnalyzer } from "../agents/post-analyzer/index.ts";
import { createPromptClient } from "../client/prompt-client.ts";
import { freePort } from "../runtime/temporal-dev-server.ts";

const AGL = fileURLToPath(new URL("../bin/agl.js", import.meta.url));
const NODE = process.execPath;
const CACHED_CALLS = 100_000;
const CONCURRENCY = 16;
const LOAD_MS = 10_000;
const WARMUP_MS = 1_000;

export interface CachedGetResult {
  calls: number;
  medianNs: number;
  p99Ns: number;
}

export interface LoadResult {
  scenario: string;
  status: number;
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export interface PromptBenchResult {
  cachedGet: CachedGetResult;
  load: LoadResult[];
}

export async function benchPromptServing(): Promise<PromptBenchResult> {
  const home = mkdtempSync(join(tmpdir(), "agl-bench-prompts-"));
  const port = await freePort();
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? home, AGL_DATA_DIR: join(home, "data"), AGL_MODEL: "fake", AGL_PORT: String(port) };
  const up = execa(NODE, [AGL, "up"], { env, extendEnv: false, cwd: home, reject: false, stdout: "ignore", stderr: "pipe" });
  try {
    const baseUrl = await new Promise<string>((resolve, reject) => {
      let output = "";
      up.stderr!.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        const match = /agl up: (http:\/\/\S+)/.exec(output);
        if (match) resolve(match[1]!);
      });
      void up.then(() => reject(new Error(`agl up exited before serving:\n${output}`)));
    });
    // Published the way a user would, by a second agl process joining the one that owns the data folder.
    const seedFile = join(home, "seed.json");
    writeFileSync(seedFile, JSON.stringify(postAnalyzer.prompt.seed));
    const published = await execa(NODE, [AGL, "prompts", "publish", postAnalyzer.id, "--file", seedFile, "--label", "production"], { env, extendEnv: false, cwd: home, reject: false });
    if (published.exitCode !== 0) throw new Error(`publishing the seed failed: ${published.stderr}`);

    const url = `${baseUrl}/v1/resources/${postAnalyzer.prompt.resource}`;
    const cachedGet = await benchCachedGet(baseUrl, join(home, "prompt-cache"));
    const etag = (await fetch(url)).headers.get("etag")!;
    return {
      cachedGet,
      load: [await loadTest("GET by label", url, {}, 200), await loadTest("GET with If-None-Match", url, { "if-none-match": etag }, 304)],
    };
  } finally {
    up.kill("SIGTERM");
    await up;
    rmSync(home, { recursive: true, force: true });
  }
}

/** Every call timed on its own: the median is what one agent run pays for its prompt. */
async function benchCachedGet(baseUrl: string, cacheDir: string): Promise<CachedGetResult> {
  const client = createPromptClient({ baseUrl, ttlMs: 60 * 60_000, cacheDir });
  const name = postAnalyzer.prompt.resource;
  for (let i = 0; i < 10_000; i++) await client.get(name);
  const samples = new Float64Array(CACHED_CALLS);
  for (let i = 0; i < CACHED_CALLS; i++) {
    const started = process.hrtime.bigint();
    const served = await client.get(name);
    samples[i] = Number(process.hrtime.bigint() - started);
    if (served.freshness !== "cached") throw new Error(`expected a cached copy, got ${served.freshness}`);
  }
  samples.sort();
  return { calls: CACHED_CALLS, medianNs: percentile(samples, 0.5), p99Ns: percentile(samples, 0.99) };
}

/** A closed-loop load generator: CONCURRENCY requests in flight on keep-alive connections, for LOAD_MS after a warm-up. */
async function loadTest(scenario: string, url: string, headers: Record<string, string>, status: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const request = () =>
    new Promise<number>((resolve, reject) => {
      const outgoing = http.get(url, { agent, headers }, (response) => {
        response.on("data", () => {});
        response.on("end", () => resolve(response.statusCode ?? 0));
        response.on("error", reject);
      });
      outgoing.on("error", reject);
    });
  const run = async (durationMs: number) => {
    const latencies: number[] = [];
    let errors = 0;
    const started = performance.now();
    const deadline = started + durationMs;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < deadline) {
          const sent = performance.now();
          const answered = await request().catch(() => 0);
          if (answered === status) latencies.push(performance.now() - sent);
          else errors++;
        }
      }),
    );
    return { latencies: Float64Array.from(latencies).sort(), errors, seconds: (performance.now() - started) / 1000 };
  };
  try {
    await run(WARMUP_MS);
    const { latencies, errors, seconds } = await run(LOAD_MS);
    return {
      scenario,
      status,
      requests: latencies.length,
      requestsPerSecond: latencies.length / seconds,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      errors,
    };
  } finally {
    agent.destroy();
  }
}

function percentile(sorted: Float64Array, fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? 0;
}

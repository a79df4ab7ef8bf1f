// Benchmark: how fast an agent gets its prompt. The client's cached `get` (what every agent run
// pays), and the resources endpoint of a real `agl up` (embedded PGlite) under 16 keep-alive
// connections for 10 s, both full answers (200) and revalidations (If-None-Match, 304), against
// `GET /healthz` of the same server in the same run: the ratio says what serving a prompt costs
// over serving nothing.
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
/** The scenarios take turns, LOAD_MS / ROUNDS each per round, so a change in the machine's load touches them alike. */
const ROUNDS = 5;

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
  /** requestsPerSecond over that of `GET /healthz` in the same run. */
  ofHealthz: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export interface PromptBenchResult {
  cachedGet: CachedGetResult;
  /** The same, by key (a different user each call) while a canary runs: the arm is picked in the client. */
  cachedKeyedGet: CachedGetResult;
  /** From a label move's HTTP answer to the subscribed client holding the new version (its time limit: an hour). */
  changeEvents: CachedGetResult;
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

    // A second version on a 10 % canary, started by a third process (agl deploy), as a user would.
    const again = await execa(NODE, [AGL, "prompts", "publish", postAnalyzer.id, "--file", seedFile, "--note", "canary"], { env, extendEnv: false, cwd: home, reject: false });
    const deployed = await execa(NODE, [AGL, "deploy", "--agent", postAnalyzer.id, "--version", "2", "--canary", "10%"], { env, extendEnv: false, cwd: home, reject: false });
    if (again.exitCode !== 0 || deployed.exitCode !== 0) throw new Error(`starting the canary failed: ${again.stderr}${deployed.stderr}`);

    const url = `${baseUrl}/v1/resources/${postAnalyzer.prompt.resource}`;
    const cachedGet = await benchCachedGet(baseUrl, join(home, "prompt-cache"), false);
    const cachedKeyedGet = await benchCachedGet(baseUrl, join(home, "prompt-cache"), true);
    const changeEvents = await benchChangeEvents(baseUrl, join(home, "prompt-cache"));
    const etag = (await fetch(url)).headers.get("etag")!;
    return {
      cachedGet,
      cachedKeyedGet,
      changeEvents,
      load: await loadTest([
        { scenario: "GET /healthz", url: `${baseUrl}/healthz`, headers: {}, status: 200 },
        { scenario: "GET by label", url, headers: {}, status: 200 },
        { scenario: "GET with If-None-Match", url, headers: { "if-none-match": etag }, status: 304 },
        { scenario: "GET by key, canary running", url: `${url}?key=user-42`, headers: {}, status: 200 },
      ]),
    };
  } finally {
    up.kill("SIGTERM");
    await up;
    rmSync(home, { recursive: true, force: true });
  }
}

/** Every call timed on its own: the median is what one agent run pays for its prompt. Keyed: a different user each call, from 1,000. */
async function benchCachedGet(baseUrl: string, cacheDir: string, keyed: boolean): Promise<CachedGetResult> {
  const client = createPromptClient({ baseUrl, ttlMs: 60 * 60_000, cacheDir });
  const name = postAnalyzer.prompt.resource;
  const selector = (i: number) => (keyed ? { key: `user-${i % 1000}` } : {});
  try {
    for (let i = 0; i < 10_000; i++) await client.get(name, selector(i));
    const samples = new Float64Array(CACHED_CALLS);
    for (let i = 0; i < CACHED_CALLS; i++) {
      const started = process.hrtime.bigint();
      const served = await client.get(name, selector(i));
      samples[i] = Number(process.hrtime.bigint() - started);
      if (served.freshness !== "cached") throw new Error(`expected a cached copy, got ${served.freshness}`);
    }
    samples.sort();
    return { calls: CACHED_CALLS, medianNs: percentile(samples, 0.5), p99Ns: percentile(samples, 0.99) };
  } finally {
    client.close();
  }
}

const LABEL_MOVES = 40;

/** A subscribed client reading the `candidate` label while it moves back and forth through the HTTP API. */
async function benchChangeEvents(baseUrl: string, cacheDir: string): Promise<CachedGetResult> {
  const name = postAnalyzer.prompt.resource;
  let changed: (() => void) | undefined;
  const client = createPromptClient({ baseUrl, ttlMs: 60 * 60_000, cacheDir, onVersionChange: () => changed?.() });
  const move = (version: number) =>
    fetch(`${baseUrl}/v1/resources/${name}/labels/candidate`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ version, actor: "bench" }) });
  try {
    await move(1);
    await client.get(name, { label: "candidate" });
    while (!client.subscribed(name)) await new Promise((resolve) => setTimeout(resolve, 10));
    const samples = new Float64Array(LABEL_MOVES);
    for (let i = 0; i < LABEL_MOVES; i++) {
      const seen = new Promise<void>((resolve) => (changed = resolve));
      const answered = await move(i % 2 === 0 ? 2 : 1);
      if (!answered.ok) throw new Error(`moving the label answered ${answered.status}`);
      const started = process.hrtime.bigint();
      await seen;
      samples[i] = Number(process.hrtime.bigint() - started);
    }
    samples.sort();
    return { calls: LABEL_MOVES, medianNs: percentile(samples, 0.5), p99Ns: percentile(samples, 0.99) };
  } finally {
    client.close();
  }
}

interface Scenario {
  scenario: string;
  url: string;
  headers: Record<string, string>;
  status: number;
}

/**
 * A closed-loop load generator: CONCURRENCY requests in flight on keep-alive connections. After a warm-up,
 * the scenarios take ROUNDS turns each, LOAD_MS in all per scenario; the first one is the reference.
 */
async function loadTest(scenarios: Scenario[]): Promise<LoadResult[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const request = ({ url, headers }: Scenario) =>
    new Promise<number>((resolve, reject) => {
      const outgoing = http.get(url, { agent, headers }, (response) => {
        response.on("data", () => {});
        response.on("end", () => resolve(response.statusCode ?? 0));
        response.on("error", reject);
      });
      outgoing.on("error", reject);
    });
  const run = async (scenario: Scenario, durationMs: number, latencies: number[]) => {
    let errors = 0;
    const started = performance.now();
    const deadline = started + durationMs;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < deadline) {
          const sent = performance.now();
          const answered = await request(scenario).catch(() => 0);
          if (answered === scenario.status) latencies.push(performance.now() - sent);
          else errors++;
        }
      }),
    );
    return { errors, seconds: (performance.now() - started) / 1000 };
  };
  try {
    for (const scenario of scenarios) await run(scenario, WARMUP_MS, []);
    const totals = scenarios.map(() => ({ latencies: [] as number[], errors: 0, seconds: 0 }));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [index, scenario] of scenarios.entries()) {
        const total = totals[index]!;
        const { errors, seconds } = await run(scenario, LOAD_MS / ROUNDS, total.latencies);
        total.errors += errors;
        total.seconds += seconds;
      }
    }
    const rate = (index: number) => totals[index]!.latencies.length / totals[index]!.seconds;
    return scenarios.map((scenario, index) => {
      const latencies = Float64Array.from(totals[index]!.latencies).sort();
      return {
        scenario: scenario.scenario,
        status: scenario.status,
        requests: latencies.length,
        requestsPerSecond: rate(index),
        ofHealthz: rate(index) / rate(0),
        p50Ms: percentile(latencies, 0.5),
        p99Ms: percentile(latencies, 0.99),
        errors: totals[index]!.errors,
      };
    });
  } finally {
    agent.destroy();
  }
}

function percentile(sorted: Float64Array, fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? 0;
}

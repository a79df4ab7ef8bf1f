// `npm run bench:optimize [-- --tweeteval DIR] [--cycles N] [--only fake|local] [--agent ID …] [--algorithm A]`: does the
// loop make the agent better? Runs full training cycles in a row (each starts from the version the
// previous one left in production), then runs v1 and the final production version on the `test` split,
// which no cycle trained or gated on, and prints, per agent, data set, model and algorithm: both test
// scores and their paired difference with 95 % intervals (the number to believe), the validation score
// after each cycle (which chose the winner, so it flatters it), the rollouts spent and the wall time.
// A measurement, not a test.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { readDatasetFile } from "../agents/dataset-file.ts";
import { bundledAgents, fundingExtractor, postAnalyzer, supportReply } from "../agents/examples.ts";
import { LOCAL_MODEL_FILE } from "../agents/models/index.ts";
import type { AgentDefinition } from "../agents/types.ts";
import { loadConfig } from "../config/load.ts";
import { INSTALL_ROOT } from "../config/paths.ts";
import { cycleSettings, startCycle } from "../runtime/cycles.ts";
import { openRuntime } from "../runtime/runtime.ts";
import { startWorker } from "../runtime/worker.ts";
import type { Task } from "../store/datasets.ts";
import type { EvaluationContender, EvaluationResult, evaluatePrompts } from "../workflows/evaluation.ts";
import type { CycleResult, MeanInterval } from "../workflows/types.ts";

interface BenchCase {
  agent: AgentDefinition;
  dataset: string;
  model: "fake" | "local";
  algorithm: "llm-free" | "apo" | "gepa";
  cycles: number;
  tasks: () => Promise<Task[]>;
  settings?: Record<string, unknown>;
}

const { values: args } = parseArgs({
  options: {
    tweeteval: { type: "string" },
    cycles: { type: "string", default: "3" },
    only: { type: "string" },
    agent: { type: "string", multiple: true },
    algorithm: { type: "string" },
  },
});
const cycles = Number(args.cycles);
const sharedTweeteval = resolve(INSTALL_ROOT, "../shared/data/tweeteval-sentiment");
const tweetevalDir = args.tweeteval ? resolve(args.tweeteval) : existsSync(sharedTweeteval) ? sharedTweeteval : undefined;

/** An agent's bundled data set, as shipped: cycles use train and validation, the test split is measured after them. */
const bundled = (agent: AgentDefinition, dataset: string) => () => readDatasetFile(agent.datasets[dataset]!, agent);
const posts = bundled(postAnalyzer, "posts");
const announcements = bundled(fundingExtractor, "funding-announcements");
const messages = bundled(supportReply, "support-messages");

/**
 * TweetEval sentiment (SemEval-2017): only the sentiment is known, so `expected` is partial and the
 * ground-truth scorer judges sentiment alone. A fixed, label-balanced sample keeps runs comparable.
 */
function tweeteval(dir: string, train: number, validation: number, test: number): () => Promise<Task[]> {
  return async () => {
    const texts = readFileSync(join(dir, "test_text.txt"), "utf8").split("\n");
    const mapping = new Map(
      readFileSync(join(dir, "mapping.txt"), "utf8")
        .trim()
        .split("\n")
        .map((line) => line.split("\t") as [string, string]),
    );
    const labels = readFileSync(join(dir, "test_labels.txt"), "utf8").trim().split("\n");
    const byLabel = new Map<string, number[]>();
    labels.forEach((label, index) => byLabel.set(label, [...(byLabel.get(label) ?? []), index]));
    // Every 7th line of each label, in order: deterministic, spread over the file, balanced.
    const pick = (count: number, offset: number) =>
      [...byLabel.values()].flatMap((indexes) => indexes.filter((_, i) => i % 7 === offset).slice(0, Math.ceil(count / byLabel.size)));
    const toTask = (split: "train" | "validation" | "test") => (index: number) => ({
      id: `tweet-${index}`,
      input: { content: texts[index]!.trim() || "(empty)" },
      expected: { sentiment: mapping.get(labels[index]!)! },
      split,
    });
    return [...pick(train, 0).map(toTask("train")), ...pick(validation, 3).map(toTask("validation")), ...pick(test, 5).map(toTask("test"))];
  };
}

const allCases: BenchCase[] = [
  { agent: postAnalyzer, dataset: "posts (bundled)", model: "fake", algorithm: "llm-free", cycles, tasks: posts },
  { agent: postAnalyzer, dataset: "posts (bundled)", model: "fake", algorithm: "llm-free", cycles, tasks: posts, settings: { rounds: 3 } },
  { agent: postAnalyzer, dataset: "posts (bundled)", model: "local", algorithm: "llm-free", cycles: Math.min(cycles, 2), tasks: posts },
  { agent: postAnalyzer, dataset: "posts (bundled)", model: "local", algorithm: "apo", cycles: 1, tasks: posts, settings: { rounds: 2 } },
  // The reflection model is the local model too (optimizer.llm unset); the default budget of agent runs.
  { agent: postAnalyzer, dataset: "posts (bundled)", model: "local", algorithm: "gepa", cycles: 1, tasks: posts },
  ...(tweetevalDir
    ? [
        { agent: postAnalyzer, dataset: "tweeteval sentiment", model: "fake", algorithm: "llm-free", cycles, tasks: tweeteval(tweetevalDir, 300, 150, 150) } satisfies BenchCase,
        { agent: postAnalyzer, dataset: "tweeteval sentiment", model: "local", algorithm: "llm-free", cycles: 1, tasks: tweeteval(tweetevalDir, 150, 90, 90) } satisfies BenchCase,
      ]
    : []),
  { agent: fundingExtractor, dataset: "funding announcements (bundled)", model: "fake", algorithm: "llm-free", cycles, tasks: announcements },
  { agent: fundingExtractor, dataset: "funding announcements (bundled)", model: "local", algorithm: "llm-free", cycles: 1, tasks: announcements },
  { agent: supportReply, dataset: "support messages (bundled)", model: "fake", algorithm: "llm-free", cycles, tasks: messages },
  { agent: supportReply, dataset: "support messages (bundled)", model: "local", algorithm: "llm-free", cycles: 1, tasks: messages },
];
const cases = allCases.filter(
  (benchCase) =>
    (!args.only || benchCase.model === args.only) && (!args.agent || args.agent.includes(benchCase.agent.id)) && (!args.algorithm || benchCase.algorithm === args.algorithm),
);

interface CaseResult {
  benchCase: BenchCase;
  baseline: number;
  after: number[];
  outcomes: string[];
  /** v1 and the final production version on the test split (one entry when no cycle deployed). */
  test: EvaluationResult;
  rollouts: number;
  wallMs: number;
}

async function runCase(benchCase: BenchCase): Promise<CaseResult> {
  const dataDir = mkdtempSync(join(tmpdir(), "agl-bench-optimize-"));
  const config = loadConfig({
    agents: bundledAgents,
    env: { ...process.env, AGL_DATA_DIR: dataDir, AGL_MODEL: benchCase.model, AGL_OPTIMIZER_ALGORITHM: benchCase.algorithm },
    // The data folder is a scratch one; the model stays where the setup command put it.
    overrides: process.env.AGL_MODEL_PATH ? {} : { model: { path: join(INSTALL_ROOT, ".agl", "models", LOCAL_MODEL_FILE) } },
  });
  const runtime = await openRuntime(config, { store: true, temporal: true, command: "npm run bench:optimize" });
  const worker = await startWorker({ config, store: runtime.store, address: runtime.temporal.address });
  try {
    await runtime.store.datasets.importTasks({ name: "bench", agent: benchCase.agent.id, source: benchCase.dataset, tasks: await benchCase.tasks() });
    const results: CycleResult[] = [];
    let rollouts = 0;
    const started = performance.now();
    for (let index = 0; index < benchCase.cycles; index++) {
      const handle = await startCycle({
        config,
        store: runtime.store,
        client: runtime.temporal.client,
        agent: benchCase.agent.id,
        dataset: "bench",
        settings: { optimizer: { ...cycleSettings(config).optimizer, ...benchCase.settings } },
      });
      const result = await handle.result();
      results.push(result);
      rollouts += await runtime.store.rollouts.countForCycle(handle.workflowId);
      process.stderr.write(`  ${benchCase.agent.id} / ${benchCase.dataset} / ${benchCase.model} / ${benchCase.algorithm}: cycle ${index + 1}: ${result.detail}\n`);
    }
    const test = await measureOnTest(runtime, config, benchCase.agent);
    rollouts += test.contenders.reduce((sum, contender) => sum + contender.rollouts, 0);
    return {
      benchCase,
      baseline: results[0]?.baseline?.meanReward ?? Number.NaN,
      after: results.map((result) => (result.outcome === "deployed" ? result.best!.meanReward : (result.baseline?.meanReward ?? Number.NaN))),
      outcomes: results.map((result) => (result.outcome === "deployed" ? `v${result.deployedVersion}` : "kept")),
      test,
      rollouts,
      wallMs: performance.now() - started,
    };
  } finally {
    await worker.stop();
    await runtime.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The final production version against v1 on the whole test split, through the same durable evaluation as `agl test --against 1`. */
async function measureOnTest(runtime: Awaited<ReturnType<typeof openRuntime>>, config: ReturnType<typeof loadConfig>, agent: AgentDefinition): Promise<EvaluationResult> {
  const production = await runtime.store.resources.getByLabel(agent.prompt.resource, "production");
  const contender = (version: number): EvaluationContender => ({ contender: `v${version}`, description: `v${version}`, prompt: { version } });
  const contenders = production.version === 1 ? [contender(1)] : [contender(production.version), contender(1)];
  const taskIds = await runtime.store.datasets.taskIds("bench", "test");
  const handle = await runtime.temporal.client.workflow.start<typeof evaluatePrompts>("evaluatePrompts", {
    taskQueue: config.temporal.taskQueue,
    workflowId: `ev-bench-${agent.id}-${Date.now()}`,
    args: [{ agent: agent.id, dataset: "bench", split: "test", taskIds, contenders, repeats: 1, settings: cycleSettings(config) }],
  });
  return handle.result();
}

const row = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
const withInterval = (value: MeanInterval | null | undefined, signed = false) => {
  if (!value) return "—";
  const shown = (x: number) => `${signed && x >= 0 ? "+" : ""}${x.toFixed(3)}`;
  return value.low === null || value.high === null ? shown(value.mean) : `${shown(value.mean)} [${shown(value.low)}, ${shown(value.high)}]`;
};
// A cycle that kept the incumbent before validating anything (no candidate) has no validation score.
const score = (value: number) => (Number.isNaN(value) ? "—" : value.toFixed(3));
console.log("## Optimizer lift: v1 and the final production prompt on the test split (95 % intervals over tasks), and the validation score after each cycle\n");
if (!tweetevalDir) console.log("(TweetEval not found: pass --tweeteval DIR to add it.)\n");
console.log(row(["agent", "data set", "model", "algorithm", "test: v1", "test: final", "test: final − v1 (paired)", "validation: baseline → after each cycle", "deployed", "rollouts", "wall"]));
console.log(row(["---", "---", "---", "---", "---:", "---:", "---:", "---", "---", "---:", "---:"]));
for (const benchCase of cases) {
  const result = await runCase(benchCase);
  const algorithm = benchCase.settings?.rounds ? `${benchCase.algorithm}, ${benchCase.settings.rounds} rounds` : benchCase.algorithm;
  console.log(
    row([
      benchCase.agent.id,
      benchCase.dataset,
      benchCase.model === "fake" ? "fake-keyword" : "SmolLM2-135M (local)",
      algorithm,
      withInterval(result.test.contenders.at(-1)!.reward),
      result.test.contenders.length > 1 ? withInterval(result.test.contenders[0]!.reward) : "(v1 kept)",
      result.test.difference ? withInterval(result.test.difference, true) : "—",
      [result.baseline, ...result.after].map(score).join(" → "),
      result.outcomes.join(", "),
      result.rollouts,
      `${(result.wallMs / 1000).toFixed(0)} s`,
    ]),
  );
}

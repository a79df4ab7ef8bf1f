import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { type Command, InvalidArgumentError, Option } from "commander";
import { prepareAgent } from "../activities/cycle-activities.ts";
import { describeModel } from "../agents/models/index.ts";
import type { AgentDefinition } from "../agents/types.ts";
import { checkDatasetTarget, CycleFailedError, cycleSettings, rootCauseMessage, startWithWorker } from "../runtime/cycles.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { InvalidInputError } from "../store/errors.ts";
import type { Split } from "../store/schema.ts";
import { type EvaluationContender, type EvaluationInput, type EvaluationResult, evaluationProgressQuery, type evaluatePrompts } from "../workflows/evaluation.ts";
import type { MeanInterval } from "../workflows/types.ts";
import { positiveInteger } from "./cycle-commands.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";
import { printJson, ProgressBar, table } from "./output.ts";

interface TestOptions {
  agent: string;
  dataset: string;
  split: Split;
  version?: number;
  label?: string;
  candidate?: string;
  repeat: number;
  against?: string;
  failUnder?: number;
  json?: boolean;
}

export function registerTestCommand(program: Command): void {
  program
    .command("test")
    .description("measure a prompt on a split (default: test) with a 95% interval, optionally against another on the same tasks; --fail-under makes it a CI gate")
    .requiredOption("--agent <agent>", "agent id")
    .requiredOption("--dataset <dataset>", "data set name")
    .addOption(new Option("--split <split>", "which split to run").choices(["train", "validation", "test"]).default("test"))
    .option("--version <n>", "a published version (default: the one labelled production)", (value) => positiveInteger(value, "--version"))
    .option("--label <label>", "the version a label points at")
    .option("--candidate <cycle/id>", "an unpublished candidate of a cycle, e.g. cy-post-analyzer-…/r1c2")
    .option("--repeat <k>", "runs per task, for a model whose answers vary", (value) => positiveInteger(value, "--repeat"), 1)
    .option("--against <version|label>", "run this one too on the same tasks and report the paired difference, e.g. production or 3")
    .option("--fail-under <x>", "exit 1 when the mean reward is below x (a CI gate)", rewardThreshold)
    .option("--json", "print machine-readable JSON")
    .action(async (options: TestOptions, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const agent = config.agents.get(options.agent);
      if ([options.version, options.label, options.candidate].filter((choice) => choice !== undefined).length > 1) {
        throw new InvalidInputError("Give at most one of --version, --label and --candidate.");
      }
      const result = await withRuntime(config, { store: true, temporal: true, command: `agl test --agent ${agent.id}` }, (runtime) => runTest(runtime, agent, options));
      if (options.json) printJson(result);
      else printReport(result);
      const measured = result.contenders[0]!.reward;
      if (options.failUnder !== undefined && (measured === null || measured.mean < options.failUnder)) {
        throw new TestFailedError(`${result.contenders[0]!.description}: mean reward ${measured ? measured.mean.toFixed(3) : "none"} is below --fail-under ${options.failUnder}.`);
      }
    });
}

/** The regression gate tripped: exit 1, like any operation that did not succeed. */
class TestFailedError extends Error {
  override name = "TestFailedError";
}

async function runTest(runtime: Runtime, agent: AgentDefinition, options: TestOptions): Promise<EvaluationResult> {
  const { store, config } = runtime;
  await checkDatasetTarget(store, agent, options.dataset);
  await prepareAgent(store, agent, options.dataset);
  const taskIds = await store.datasets.taskIds(options.dataset, options.split);
  if (taskIds.length === 0) throw new InvalidInputError(`Data set "${options.dataset}" has no ${options.split} tasks; choose another --split.`);
  const contenders = [await contenderFor(runtime, agent, options)];
  if (options.against !== undefined) {
    const against = await publishedContender(runtime, agent, /^v?\d+$/.test(options.against) ? { version: Number(options.against.replace(/^v/, "")) } : { label: options.against });
    if (against.contender === contenders[0]!.contender) throw new InvalidInputError(`${contenders[0]!.description} and ${against.description} are the same prompt: nothing to compare.`);
    contenders.push(against);
  }
  const settings = cycleSettings(config);
  const input: EvaluationInput = { agent: agent.id, dataset: options.dataset, split: options.split, taskIds, contenders, repeats: options.repeat, settings };
  const evaluationId = `ev-${agent.id}-${new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15)}-${randomBytes(2).toString("hex")}`;
  const { handle, worker } = await startWithWorker(runtime, "evaluation", true, Boolean(options.json), () =>
    runtime.temporal.client.workflow.start<typeof evaluatePrompts>("evaluatePrompts", { taskQueue: config.temporal.taskQueue, workflowId: evaluationId, args: [input] }),
  );
  try {
    if (!options.json) process.stderr.write(`Evaluation ${evaluationId}: ${contenders.map((entry) => entry.description).join(" vs ")} on ${taskIds.length} ${options.split} tasks of ${options.dataset}, model ${describeModel(config)}\n`);
    const bar = options.json ? undefined : new ProgressBar();
    const result = handle.result();
    let finished = false;
    void result.finally(() => (finished = true)).catch(() => undefined);
    while (!finished) {
      const progress = await Promise.race([handle.query(evaluationProgressQuery).catch(() => undefined), sleep(2_000)]);
      if (progress && !finished) bar?.update("test", progress.done, progress.total);
      await Promise.race([sleep(500), result.catch(() => undefined)]);
    }
    bar?.finish();
    return await result.catch((error: unknown) => {
      throw new CycleFailedError(`Evaluation ${evaluationId} failed: ${rootCauseMessage(error)}`);
    });
  } finally {
    await worker?.stop();
  }
}

async function contenderFor(runtime: Runtime, agent: AgentDefinition, options: TestOptions): Promise<EvaluationContender> {
  if (options.candidate !== undefined) {
    const slash = options.candidate.lastIndexOf("/");
    if (slash <= 0) throw new InvalidInputError(`--candidate "${options.candidate}" must be CYCLE/CANDIDATE, e.g. cy-${agent.id}-20261130-101500-ab12/r1c2.`);
    const cycleId = options.candidate.slice(0, slash);
    const candidateId = options.candidate.slice(slash + 1);
    const cycle = await runtime.store.cycles.get(cycleId);
    if (cycle.agent !== agent.id) throw new InvalidInputError(`Cycle ${cycleId} trained agent "${cycle.agent}", not "${agent.id}".`);
    await runtime.store.cycles.candidate(cycleId, candidateId);
    return { contender: candidateId, description: options.candidate, prompt: { candidateId, cycleId } };
  }
  return publishedContender(runtime, agent, options.version !== undefined ? { version: options.version } : { label: options.label ?? "production" });
}

async function publishedContender(runtime: Runtime, agent: AgentDefinition, which: { version: number } | { label: string }): Promise<EvaluationContender> {
  const resource = agent.prompt.resource;
  const version = "version" in which ? await runtime.store.resources.getVersion(resource, which.version) : await runtime.store.resources.getByLabel(resource, which.label);
  const description = "version" in which ? `v${version.version}` : `${which.label} (v${version.version})`;
  return { contender: `v${version.version}`, description, prompt: { version: version.version } };
}

function rewardThreshold(value: string): number {
  const number = Number(value);
  if (value.trim() === "" || !Number.isFinite(number) || number < -1 || number > 1) throw new InvalidArgumentError(`--fail-under must be a number from -1 to 1, got "${value}".`);
  return number;
}

function interval(value: MeanInterval | null, signed = false): string {
  if (!value) return "-";
  const shown = (x: number) => `${signed && x >= 0 ? "+" : ""}${x.toFixed(3)}`;
  return value.low === null || value.high === null ? shown(value.mean) : `${shown(value.mean)} [${shown(value.low)}, ${shown(value.high)}]`;
}

function printReport(result: EvaluationResult): void {
  console.log(`\n${result.agent} on ${result.tasks} ${result.split} tasks of ${result.dataset}${result.repeats > 1 ? `, ${result.repeats} runs each` : ""} (mean reward, 95% interval over tasks)`);
  console.log(
    table(
      ["PROMPT", "ROLLOUTS", "FAILED", "MEAN REWARD", "BY SCORER", "FIELD ACCURACY"],
      result.contenders.map((entry) => [
        entry.description,
        entry.rollouts,
        entry.failed,
        interval(entry.reward),
        Object.entries(entry.rewardByScorer)
          .map(([scorer, value]) => `${scorer} ${value.mean.toFixed(3)}`)
          .join(", "),
        Object.entries(entry.fieldAccuracy)
          .map(([field, value]) => `${field} ${(value.accuracy * 100).toFixed(1)}%`)
          .join(", "),
      ]),
    ),
  );
  if (result.difference) {
    const [first, second] = result.contenders;
    console.log(`\ndifference ${first!.description} - ${second!.description}, paired over ${result.difference.n} tasks: ${interval(result.difference, true)}`);
  }
  for (const entry of result.contenders) {
    for (const [field, matrix] of Object.entries(entry.confusion)) {
      console.log(`\n${entry.description}: ${field} (rows expected, columns answered)`);
      console.log(table(["", ...matrix.actual], matrix.expected.map((label, row) => [label, ...matrix.counts[row]!])));
    }
  }
}

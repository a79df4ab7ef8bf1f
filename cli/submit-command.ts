import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Command } from "commander";
import { readDatasetFile } from "../agents/dataset-file.ts";
import { describeModel } from "../agents/models/index.ts";
import { onlyWorkerHere, pickedUpElsewhere, startWorkerHere } from "../runtime/cycles.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { datasetTasks, type Submission, submitTasks } from "../runtime/submissions.ts";
import type { RunningWorker } from "../runtime/worker.ts";
import { InvalidInputError } from "../store/errors.ts";
import type { SubmissionResult } from "../workflows/submission.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";
import { printJson, ProgressBar } from "./output.ts";

interface SubmitOptions {
  agent: string;
  dataset?: string;
  again?: boolean;
  wait?: boolean;
  json?: boolean;
}

export function registerSubmitCommand(program: Command): void {
  program
    .command("submit")
    .description("enqueue tasks for the agent (the worker queue): every `agl worker` polling the task queue runs them; the rollouts feed cycles and analysis")
    .argument("[file]", 'JSONL file, one task a line: {"id": "...", "input": {...}, "expected": {...}} (or --dataset)')
    .requiredOption("--agent <agent>", "agent id, e.g. post-analyzer")
    .option("--dataset <dataset>", "submit the tasks of an imported data set instead of a file")
    .option("--again", "run tasks submitted before once more, as a new generation of the submission")
    .option("--wait", "follow the submission until every task ran (running a worker here if none picks it up)")
    .option("--json", "print machine-readable JSON")
    .action(async (file: string | undefined, options: SubmitOptions, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      if ((file === undefined) === (options.dataset === undefined)) {
        throw new InvalidInputError("Give exactly one of a FILE and --dataset D: agl submit tasks.jsonl --agent A, or agl submit --dataset D --agent A.");
      }
      const agent = config.agents.get(options.agent);
      // A file is checked line by line before anything starts: one bad line submits nothing.
      const fromFile = file === undefined ? undefined : await readDatasetFile(resolve(file), agent);
      await withRuntime(config, { store: true, temporal: true, command: `agl submit --agent ${agent.id}` }, async (runtime) => {
        const tasks = fromFile ?? (await datasetTasks(runtime.store, agent, options.dataset!));
        const source = file !== undefined ? `agl submit ${resolve(file)}` : `agl submit --dataset ${options.dataset}`;
        const submission = await submitTasks({ config, store: runtime.store, client: runtime.temporal.client, agent, tasks, source, again: Boolean(options.again) });
        await report(runtime, submission, options);
      });
    });
}

async function report(runtime: Runtime, submission: Submission, options: SubmitOptions): Promise<void> {
  const { handle, ...summary } = submission;
  const { stored } = await runtime.store.submissions.storedRollouts(submission.submissionId);
  if (!options.json) process.stderr.write(`${headline(submission, stored)}\n`);
  if (options.wait && handle) {
    const worker = await ensureWorker(runtime, handle, options);
    try {
      const bar = options.json ? undefined : new ProgressBar();
      const result = await follow(runtime, handle, (done) => bar?.update("submission", done, submission.tasks)).finally(() => bar?.finish());
      if (options.json) return printJson({ ...summary, rollouts: (await runtime.store.submissions.storedRollouts(submission.submissionId)).stored, result });
      return printResult(result);
    } finally {
      await worker?.stop();
    }
  }
  if (options.json) return printJson({ ...summary, rollouts: stored, result: null });
  if (!handle || stored >= submission.tasks) return console.log(submission.submissionId);
  const where = runtime.ownsEmbedded ? "when `agl worker` or `agl up` runs on this data folder" : `by any \`agl worker\` polling task queue "${runtime.config.temporal.taskQueue}"`;
  console.log(`${submission.submissionId}: queued; it runs ${where}. Follow it with --wait; then: agl analyze --agent ${submission.agent}`);
}

function headline(submission: Submission, stored: number): string {
  const what = `${submission.tasks} tasks for ${submission.agent} as ${submission.submissionId}${submission.generation > 1 ? ` (generation ${submission.generation})` : ""}`;
  if (submission.status === "started") return `Submitted ${what}.`;
  if (submission.status === "resumed") return `Resumed ${what}: ${stored} rollouts were stored; the rest run now.`;
  return `Already submitted: ${what}, ${stored} rollouts stored; nothing new runs. Pass --again to run the tasks once more.`;
}

/** Nobody else can run the submission (the embedded server is ours, or nothing polls the queue): run a worker in this process. */
async function ensureWorker(runtime: Runtime, handle: NonNullable<Submission["handle"]>, options: SubmitOptions): Promise<RunningWorker | undefined> {
  const nobodyElse = onlyWorkerHere(runtime) || !(await pickedUpElsewhere(runtime, handle));
  if (!nobodyElse) return undefined;
  if (!options.json) process.stderr.write(`Running a worker in this process (model ${describeModel(runtime.config)}).\n`);
  return startWorkerHere(runtime);
}

/** The workflow's result; meanwhile the count of stored rollouts, read from the store, as progress. */
async function follow(runtime: Runtime, handle: NonNullable<Submission["handle"]>, onProgress: (done: number) => void): Promise<SubmissionResult> {
  const result = handle.result();
  let finished = false;
  void result.finally(() => (finished = true)).catch(() => undefined);
  while (!finished) {
    onProgress((await runtime.store.submissions.storedRollouts(handle.workflowId)).stored);
    await Promise.race([sleep(500), result.catch(() => undefined)]);
  }
  return result;
}

function printResult(result: SubmissionResult): void {
  const reward = result.meanReward === null ? "no rewards (configure cycle.scorers, or add them later: agl eval)" : `mean reward ${result.meanReward.toFixed(3)} over ${result.rewarded} scored`;
  console.log(`\n${result.submissionId}: ${result.tasks} tasks, ${result.ran} run now, ${result.skipped} stored before, ${result.failed} failed; ${reward}; prompt ${result.versions.map((v) => `v${v}`).join(", ")}.`);
  if (result.rewardFailures > 0) console.log(`${result.rewardFailures} rewards could not be computed; add them with: agl eval --agent ${result.agent}`);
  console.log(`next:  agl analyze --agent ${result.agent}`);
}

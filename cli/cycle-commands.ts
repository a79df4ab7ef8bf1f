import { type Command, InvalidArgumentError } from "commander";
import { describeModel } from "../agents/models/index.ts";
import type { LoadedConfig } from "../config/load.ts";
import { findOwner } from "../runtime/ownership.ts";
import { isRunning, queryProgress, startCycle, startWithWorker, waitForCycle } from "../runtime/cycles.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { type Cycle, cycleJson } from "../store/cycles.ts";
import { ConflictError, InvalidInputError } from "../store/errors.ts";
import { parseSince } from "../runtime/analysis.ts";
import { parseDuration } from "../runtime/schedules.ts";
import type { ContenderScore, CycleProgress, CycleResult } from "../workflows/types.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";
import { formatDuration, formatTime, percent, printJson, ProgressBar, table } from "./output.ts";

export function registerCycleCommands(program: Command): void {
  const cycle = program.command("cycle").description("start, follow and list training cycles");

  cycle
    .command("start")
    .description("start a training cycle: collect -> evaluate -> train -> validate -> deploy")
    .requiredOption("--agent <agent>", "agent id, e.g. post-analyzer")
    .option("--dataset <dataset>", "train on a data set (the bundled one is `posts`)...")
    .option("--traffic <window>", "...or on the live traffic of the last WINDOW (24h, 7d): queue and OTLP rollouts")
    .option("--since <time>", "...or on the live traffic since a time (2026-11-25T08:00:00Z) or a duration back (36h)")
    .option("--wait", "follow the cycle until it ends and print its summary")
    .option("--json", "print machine-readable JSON")
    .action(async (options: StartOptions, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      if ([options.dataset, options.traffic, options.since].filter((choice) => choice !== undefined).length !== 1) {
        // A usage error, like a missing required option: commander prints it with the help hint and exits 2.
        command.error("error: Give exactly one of --dataset D, --traffic WINDOW and --since TIME.", { exitCode: 2, code: "agl.missingSource" });
      }
      // Bad input is rejected before anything starts: no data folder, no embedded services, no worker.
      config.agents.get(options.agent);
      const now = new Date();
      if (options.traffic !== undefined) options.trafficMs = parseDuration(options.traffic, "--traffic");
      if (options.since !== undefined) {
        const since = parseSince(options.since, "--since", now);
        if (since >= now) throw new InvalidInputError(`--since ${options.since} is not in the past.`);
        options.trafficMs = now.getTime() - since.getTime();
      }
      await withRuntime(config, { store: true, temporal: true, command: `agl cycle start --agent ${options.agent}` }, (runtime) =>
        startAndMaybeWait(runtime, options),
      );
    });

  cycle
    .command("status")
    .description("show one cycle: phase and progress while it runs, scores and outcome when done")
    .argument("<id>", "cycle id (see: agl cycle list)")
    .option("--json", "print machine-readable JSON")
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      await withRuntime(config, { store: true, command: "agl cycle status" }, async (runtime) => {
        const stored = await runtime.store.cycles.get(id);
        const live = stored.finishedAt ? undefined : await liveProgress(config, id);
        if (options.json) return printJson({ ...cycleJson(stored), ...(live ? { live } : {}) });
        printCycle(stored, live);
      });
    });

  cycle
    .command("list")
    .description("list recent cycles, newest first")
    .option("--agent <agent>", "only this agent's cycles")
    .option("--limit <n>", "how many", (value) => positiveInteger(value, "--limit"), 20)
    .option("--json", "print machine-readable JSON")
    .action(async (options: { agent?: string; limit: number; json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      await withRuntime(config, { store: true, command: "agl cycle list" }, async (runtime) => {
        const cycles = await runtime.store.cycles.list({ ...(options.agent ? { agent: options.agent } : {}), limit: options.limit });
        if (options.json) return printJson(cycles.map(cycleJson));
        if (cycles.length === 0) return console.log("No cycles yet. Start one with: agl cycle start --agent post-analyzer --dataset posts --wait");
        console.log(
          table(
            ["ID", "AGENT", "TRIGGER", "STARTED", "DURATION", "STATE", "RESULT"],
            cycles.map((c) => [
              c.id,
              c.agent,
              c.trigger,
              formatTime(c.startedAt),
              c.finishedAt ? formatDuration(c.finishedAt.getTime() - c.startedAt.getTime()) : "running",
              c.outcome ?? c.phase,
              c.outcomeDetail ?? "",
            ]),
          ),
        );
      });
    });

  cycle
    .command("cancel")
    .description("cancel a running cycle; nothing is deployed and the agent's lease is released")
    .argument("<id>", "cycle id")
    .action(async (id: string, _options: unknown, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      await withRuntime(config, { store: true, temporal: true, command: "agl cycle cancel" }, async (runtime) => {
        await runtime.store.cycles.get(id);
        if (!(await isRunning(runtime.temporal.client, id))) throw new ConflictError(`Cycle ${id} is not running.`);
        await runtime.temporal.client.workflow.getHandle(id).cancel();
        console.log(`Cancellation requested for ${id}.`);
      });
    });
}

interface StartOptions {
  agent: string;
  dataset?: string;
  traffic?: string;
  since?: string;
  /** The traffic window `--traffic` or `--since` asks for. */
  trafficMs?: number;
  wait?: boolean;
  json?: boolean;
}

async function startAndMaybeWait(runtime: Runtime, options: StartOptions): Promise<void> {
  const { config } = runtime;
  const client = runtime.temporal.client;
  // This process owns the embedded dev server, which stops when it exits: it must run the cycle itself.
  const wait = Boolean(options.wait) || runtime.ownsEmbedded;
  const { handle, worker } = await startWithWorker(runtime, "cycle", wait, Boolean(options.json), () =>
    startCycle({ config, store: runtime.store, client, agent: options.agent, ...(options.dataset !== undefined ? { dataset: options.dataset } : { trafficMs: options.trafficMs! }) }),
  );
  try {
    if (!wait) {
      if (options.json) return printJson({ cycleId: handle.workflowId, runId: handle.firstExecutionRunId, status: "started" });
      console.log(`Started cycle ${handle.workflowId}. Follow it with: agl cycle status ${handle.workflowId}`);
      return;
    }
    if (!options.json) {
      const source = options.dataset !== undefined ? `data set ${options.dataset}` : `traffic of the last ${formatDuration(options.trafficMs!)}`;
      process.stderr.write(`Cycle ${handle.workflowId}: agent ${options.agent}, ${source}, model ${describeModel(config)}\n`);
      if (runtime.ownsEmbedded && !options.wait) process.stderr.write("Running in the foreground: the embedded Temporal server lives as long as this command.\n");
    }
    const bar = options.json ? undefined : new ProgressBar();
    const result = await waitForCycle(handle, (progress) => bar?.update(progress.phase, progress.progress.done, progress.progress.total)).finally(() => bar?.finish());
    if (options.json) return printJson(result);
    printSummary(result, config, runtime);
  } finally {
    await worker?.stop();
  }
}

async function liveProgress(config: LoadedConfig, id: string): Promise<CycleProgress | undefined> {
  const address = config.temporal.address ?? (await findOwner(config.dataPath))?.temporal?.address;
  if (!address) return undefined;
  const { Client, Connection } = await import("@temporalio/client");
  const connection = await Connection.connect({ address });
  try {
    return await queryProgress(new Client({ connection, namespace: config.temporal.namespace }).workflow.getHandle(id));
  } finally {
    await connection.close();
  }
}

function printSummary(result: CycleResult, config: LoadedConfig, runtime: Runtime): void {
  const heading = result.outcome === "deployed" ? `deployed v${result.deployedVersion} (was v${result.incumbentVersion})` : result.outcome === "kept" ? `kept v${result.incumbentVersion}` : result.outcome;
  console.log(`\nCycle ${result.cycleId}: ${heading}`);
  const rows: string[][] = [];
  if (result.collect) rows.push(["collect (train split)", `${result.collect.rollouts} rollouts, ${result.collect.failed} failed`, result.collect.meanReward.toFixed(3), ""]);
  if (result.baseline) rows.push(scoreRow(`baseline v${result.incumbentVersion}`, result.baseline));
  if (result.best) rows.push(scoreRow(`best candidate ${result.best.contender}`, result.best));
  if (rows.length) console.log(table(["", "ROLLOUTS", "MEAN REWARD", "FIELD ACCURACY"], rows));
  console.log(`\n${result.detail}`);
  console.log(`model: ${describeModel(config)}`);
  console.log(`data:  ${runtime.describe()}`);
  console.log(`next:  agl prompts list ${result.agent}   |   agl cycle status ${result.cycleId}`);
}

function scoreRow(name: string, score: ContenderScore): string[] {
  const fields = Object.entries(score.fieldAccuracy)
    .map(([field, accuracy]) => `${field} ${percent(accuracy)}`)
    .join(", ");
  return [`${name} (validation)`, `${score.rollouts} rollouts, ${score.failed} failed`, score.meanReward.toFixed(3), fields];
}

function printCycle(cycle: Cycle, live: CycleProgress | undefined): void {
  console.log(`Cycle ${cycle.id}`);
  console.log(`  agent      ${cycle.agent}  (data set ${cycle.dataset ?? "-"}, trigger ${cycle.trigger})`);
  console.log(`  started    ${formatTime(cycle.startedAt)}${cycle.finishedAt ? `, finished ${formatTime(cycle.finishedAt)}` : ""}`);
  if (live) console.log(`  phase      ${live.phase} ${live.progress.done}/${live.progress.total}`);
  else console.log(`  phase      ${cycle.phase}${cycle.finishedAt ? "" : " (no worker is running this cycle right now)"}`);
  if (cycle.incumbentVersion !== null) console.log(`  incumbent  v${cycle.incumbentVersion}`);
  if (cycle.outcome) console.log(`  outcome    ${cycle.outcome}: ${cycle.outcomeDetail ?? ""}`);
  const metrics = cycle.metrics as Partial<CycleResult>;
  if (metrics.baseline) console.log(`  baseline   mean reward ${metrics.baseline.meanReward.toFixed(3)} on ${metrics.baseline.rollouts} validation tasks`);
  if (metrics.best) console.log(`  candidate  ${metrics.best.contender}: mean reward ${metrics.best.meanReward.toFixed(3)}`);
}

export function positiveInteger(value: string, flag: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || number < 1) throw new InvalidArgumentError(`${flag} must be a positive whole number, got "${value}".`);
  return number;
}

import type { Command } from "commander";
import type { ScheduleDescription } from "@temporalio/client";
import type { LoadedConfig } from "../config/load.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { changeSchedule, createSchedule, describeSchedule, listScheduleJson, parseDuration, type ScheduleChange, scheduleJson } from "../runtime/schedules.ts";
import { InvalidInputError } from "../store/errors.ts";
import type { Store } from "../store/index.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";
import { formatDuration, formatTime, printJson, table } from "./output.ts";

const NEXT_RUNS_SHOWN = 5;

export function registerScheduleCommands(program: Command): void {
  const schedule = program.command("schedule").description("run cycles by themselves on Temporal Schedules (e.g. nightly)");

  schedule
    .command("create")
    .description("create a schedule that starts a training cycle at the times it names")
    .argument("<id>", "schedule id")
    .requiredOption("--agent <agent>", "agent id")
    .option("--dataset <dataset>", "train on this data set's train split")
    .option("--traffic <window>", "train on the live traffic of this window before each run, e.g. 24h")
    .option("--cron <expression>", 'cron expression, e.g. "0 2 * * *"')
    .option("--every <duration>", "interval, e.g. 6h")
    .option("--timezone <tz>", "IANA time zone for the cron expression, e.g. Europe/Paris (default UTC)")
    .option("--paused", "create it paused")
    .option("--json", "print machine-readable JSON")
    .action(async (id: string, options: { agent: string; dataset?: string; traffic?: string; cron?: string; every?: string; timezone?: string; paused?: boolean; json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const request = {
        id,
        agent: options.agent,
        ...(options.dataset !== undefined ? { dataset: options.dataset } : {}),
        ...(options.traffic !== undefined ? { trafficMs: parseDuration(options.traffic, "--traffic") } : {}),
        ...(options.cron !== undefined ? { cron: options.cron } : {}),
        ...(options.every !== undefined ? { everyMs: parseDuration(options.every, "--every") } : {}),
        ...(options.timezone !== undefined ? { timezone: options.timezone } : {}),
        paused: Boolean(options.paused),
      };
      await withScheduler(config, "agl schedule create", async (runtime) => {
        const created = await createSchedule({ client: runtime.temporal.client, store: runtime.store, config, request });
        if (options.json) return printJson(await scheduleJson(created, runtime.store));
        console.log(`Created schedule ${id}${options.paused ? " (paused)" : ""}.`);
        await printSchedule(created, runtime.store, config);
      });
    });

  schedule
    .command("list")
    .description("every training-cycle schedule, with its next run and last outcome")
    .option("--json", "print machine-readable JSON")
    .action(async (options: { json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      await withScheduler(config, "agl schedule list", async (runtime) => {
        const schedules = await listScheduleJson(runtime.temporal.client, runtime.store);
        if (options.json) return printJson(schedules);
        if (schedules.length === 0) return console.log("No schedules. Create one with: agl schedule create nightly --agent post-analyzer --dataset posts --cron \"0 2 * * *\"");
        console.log(
          table(
            ["ID", "AGENT", "TRAINS ON", "WHEN", "STATE", "NEXT RUN", "LAST OUTCOME"],
            schedules.map((s) => [s.id, s.agent, s.dataset ?? `traffic ${formatDuration(s.trafficWindowMs ?? 0)}`, whenText(s), s.paused ? "paused" : "active", formatTime(s.nextRuns[0]), s.recentRuns.at(-1)?.outcome ?? ""]),
          ),
        );
      });
    });

  schedule
    .command("describe")
    .description("a schedule's spec, next run times and recent runs with their outcomes")
    .argument("<id>", "schedule id")
    .option("--json", "print machine-readable JSON")
    .action(async (id: string, options: { json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      await withScheduler(config, "agl schedule describe", async (runtime) => {
        const description = await describeSchedule(runtime.temporal.client, id);
        if (options.json) return printJson(await scheduleJson(description, runtime.store));
        await printSchedule(description, runtime.store, config);
      });
    });

  const simple: [name: "pause" | "resume" | "trigger" | "delete", description: string, done: string][] = [
    ["pause", "stop starting runs until resumed", "Paused"],
    ["resume", "start runs again at the scheduled times", "Resumed"],
    ["trigger", "start a run now (skipped while the agent's previous run is still going)", "Triggered"],
    ["delete", "delete the schedule (its past cycles stay)", "Deleted"],
  ];
  for (const [name, description, done] of simple) {
    schedule
      .command(name)
      .description(description)
      .argument("<id>", "schedule id")
      .action(async (id: string, _options: unknown, command: Command) => {
        const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
        await withScheduler(config, `agl schedule ${name}`, async (runtime) => {
          await changeSchedule(runtime.temporal.client, id, { kind: name } as ScheduleChange);
          console.log(`${done} schedule ${id}.`);
        });
      });
  }

  schedule
    .command("backfill")
    .description("run the slots the schedule would have run between two times, one after another")
    .argument("<id>", "schedule id")
    .requiredOption("--from <time>", "ISO 8601 time, e.g. 2026-11-20T00:00:00Z")
    .requiredOption("--to <time>", "ISO 8601 time")
    .action(async (id: string, options: { from: string; to: string }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const from = parseTime(options.from, "--from");
      const to = parseTime(options.to, "--to");
      await withScheduler(config, "agl schedule backfill", async (runtime) => {
        await changeSchedule(runtime.temporal.client, id, { kind: "backfill", from, to });
        console.log(`Backfilling schedule ${id} from ${from.toISOString()} to ${to.toISOString()}.`);
      });
    });
}

function withScheduler<T>(config: LoadedConfig, command: string, work: (runtime: Runtime) => Promise<T>): Promise<T> {
  return withRuntime(config, { store: true, temporal: true, command }, async (runtime) => {
    const result = await work(runtime);
    if (runtime.ownsEmbedded) {
      process.stderr.write("Note: schedules live in the embedded Temporal server, which runs only while an agl command does: keep `agl up` running for them to fire.\n");
    }
    return result;
  });
}

function parseTime(text: string, flag: string): Date {
  const time = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(time.getTime())) throw new InvalidInputError(`${flag} "${text}" is not an ISO 8601 time, e.g. 2026-11-20T00:00:00Z.`);
  return time;
}

function whenText(schedule: { cron: string | null; everyMs: number | null; timezone: string | null }): string {
  const spec = schedule.cron !== null ? `cron "${schedule.cron}"` : `every ${formatDuration(schedule.everyMs ?? 0)}`;
  return schedule.timezone ? `${spec} (${schedule.timezone})` : spec;
}

async function printSchedule(description: ScheduleDescription, store: Store, config: LoadedConfig): Promise<void> {
  const schedule = await scheduleJson(description, store);
  console.log(`Schedule ${schedule.id}: ${schedule.paused ? "paused" : "active"}${schedule.note ? ` (${schedule.note})` : ""}`);
  console.log(`  agent      ${schedule.agent}, trains on ${schedule.dataset ? `data set ${schedule.dataset}` : `the traffic of the last ${formatDuration(schedule.trafficWindowMs ?? 0)}`}`);
  console.log(`  when       ${whenText(schedule)}; overlapping runs are skipped; task queue "${config.temporal.taskQueue}"`);
  console.log(`  next runs  ${schedule.nextRuns.slice(0, NEXT_RUNS_SHOWN).map(formatTime).join(", ") || (schedule.paused ? "none while paused" : "none")}`);
  if (schedule.recentRuns.length === 0) return console.log("  recent     no runs yet");
  console.log(
    table(
      ["SCHEDULED", "CYCLE", "OUTCOME", "DETAIL"],
      schedule.recentRuns.map((run) => [formatTime(run.scheduledAt), run.cycleId, run.outcome ?? "not recorded", run.detail ?? ""]),
    ),
  );
}

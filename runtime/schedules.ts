import {
  type Client,
  ScheduleAlreadyRunning,
  type ScheduleDescription,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type ScheduleSummary,
} from "@temporalio/client";
import type { LoadedConfig } from "../config/load.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "../store/errors.ts";
import type { Store } from "../store/index.ts";
import type { trainingCycle } from "../workflows/training-cycle.ts";
import type { CycleInput } from "../workflows/types.ts";
import { checkCycleTarget, cycleAgent, cycleSettings } from "./cycles.ts";

export interface ScheduleRequest {
  id: string;
  agent: string;
  /** Exactly one of dataset and trafficMs. */
  dataset?: string;
  trafficMs?: number;
  /** Exactly one of cron and everyMs. */
  cron?: string;
  everyMs?: number;
  timezone?: string;
  paused?: boolean;
}

/** What agl stores in a schedule's memo, so `list` can show it without decoding workflow arguments. */
interface ScheduleMemo {
  agl: { agent: string; dataset: string | null; trafficMs: number | null; cron: string | null; everyMs: number | null; timezone: string | null };
}

const SCHEDULE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const CRON_SHORTHANDS = new Set(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]);
/** A missed run (the embedded server was down) is made up once within this window, not a week of them. */
const CATCHUP_WINDOW = "1 day";

/** Durations the CLI accepts: 90s, 30m, 24h, 7d, or combinations such as 1h30m. */
export function parseDuration(text: string, flag: string): number {
  const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const trimmed = text.trim();
  const parts = [...trimmed.matchAll(/(\d+)(ms|s|m|h|d)/g)];
  if (trimmed.startsWith("-")) throw new InvalidInputError(`${flag} must be a positive duration, got "${text}".`);
  if (parts.length === 0 || parts.map((part) => part[0]).join("") !== trimmed) {
    throw new InvalidInputError(`${flag} "${text}" is not a duration: use a number with a unit, e.g. 90s, 30m, 24h, 7d or 1h30m.`);
  }
  const ms = parts.reduce((total, part) => total + Number(part[1]) * units[part[2]!]!, 0);
  if (ms <= 0) throw new InvalidInputError(`${flag} must be a positive duration, got "${text}".`);
  return ms;
}

function checkCron(cron: string): void {
  const fields = cron.trim().split(/\s+/);
  if (CRON_SHORTHANDS.has(cron.trim()) || (fields.length >= 5 && fields.length <= 7 && fields.every((field) => /^[\d*/,?LW#A-Za-z-]+$/.test(field)))) return;
  throw new InvalidInputError(`--cron "${cron}" is not a cron expression: expected 5 fields (minute hour day-of-month month day-of-week), e.g. "0 2 * * *", or @daily.`);
}

function checkTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat("en", { timeZone: timezone });
  } catch {
    throw new InvalidInputError(`--timezone "${timezone}" is not an IANA time zone, e.g. Europe/Paris or America/New_York.`);
  }
}

/**
 * Creates a real Temporal Schedule that starts the training cycle workflow. Everything is checked
 * first (id, agent, data set, spec), and Temporal validates the cron expression itself: any problem
 * is an error before anything exists.
 */
export async function createSchedule(options: { client: Client; store: Store; config: LoadedConfig; request: ScheduleRequest }): Promise<ScheduleDescription> {
  const { request, client, config } = options;
  if (!SCHEDULE_ID.test(request.id)) throw new InvalidInputError(`Schedule id "${request.id}" must be 1-100 letters, digits, dots, dashes or underscores.`);
  if ((request.dataset === undefined) === (request.trafficMs === undefined)) throw new InvalidInputError("Give exactly one of --dataset D and --traffic WINDOW.");
  if ((request.cron === undefined) === (request.everyMs === undefined)) throw new InvalidInputError("Give exactly one of --cron EXPR and --every DURATION.");
  if (request.cron !== undefined) checkCron(request.cron);
  if (request.timezone !== undefined) checkTimezone(request.timezone);
  const agent = request.dataset !== undefined ? await checkCycleTarget(options.store, config, request.agent, request.dataset) : cycleAgent(config, request.agent);

  const input: CycleInput = {
    agent: agent.id,
    trigger: `schedule:${request.id}`,
    settings: cycleSettings(config),
    ...(request.dataset !== undefined ? { dataset: request.dataset } : { traffic: { windowMs: request.trafficMs!, minScored: config.cycle.minTrafficRollouts } }),
  };
  // Temporal hands cron expressions back compiled into calendars; the memo keeps what the user wrote.
  const memo: ScheduleMemo = {
    agl: {
      agent: agent.id,
      dataset: request.dataset ?? null,
      trafficMs: request.trafficMs ?? null,
      cron: request.cron ?? null,
      everyMs: request.everyMs ?? null,
      timezone: request.timezone ?? null,
    },
  };
  try {
    const handle = await client.schedule.create({
      scheduleId: request.id,
      spec: {
        ...(request.cron !== undefined ? { cronExpressions: [request.cron] } : { intervals: [{ every: request.everyMs! }] }),
        ...(request.timezone ? { timezone: request.timezone } : {}),
        // Runs start at the times the spec names; a nightly job has no thundering herd to spread.
        jitter: 0,
      },
      action: {
        type: "startWorkflow",
        workflowType: "trainingCycle" as unknown as typeof trainingCycle,
        // Temporal appends the scheduled time: one workflow id per slot, which also keys the slot's deploy.
        workflowId: `cy-${agent.id}-sched-${request.id}`,
        taskQueue: config.temporal.taskQueue,
        args: [input],
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW },
      memo: memo as unknown as Record<string, unknown>,
      state: { paused: Boolean(request.paused), ...(request.paused ? { note: "created paused" } : {}) },
    });
    return await handle.describe();
  } catch (error) {
    if (error instanceof ScheduleAlreadyRunning) throw new ConflictError(`Schedule "${request.id}" already exists; delete it first (agl schedule delete ${request.id}) or choose another id.`);
    // The SDK compiles cron expressions itself and throws a TypeError naming the bad field.
    if (error instanceof TypeError && request.cron !== undefined) throw new InvalidInputError(`--cron "${request.cron}" is invalid: ${error.message}`);
    throw error;
  }
}

export async function describeSchedule(client: Client, id: string): Promise<ScheduleDescription> {
  try {
    return await client.schedule.getHandle(id).describe();
  } catch (error) {
    throw notFound(error, id);
  }
}

export type ScheduleChange =
  | { kind: "pause" | "resume"; note?: string }
  | { kind: "trigger" | "delete" }
  | { kind: "backfill"; from: Date; to: Date };

/** Pause, resume, trigger, backfill or delete; unknown ids are NotFound errors. */
export async function changeSchedule(client: Client, id: string, change: ScheduleChange): Promise<void> {
  if (change.kind === "backfill" && !(change.from < change.to)) {
    throw new InvalidInputError(`--from (${change.from.toISOString()}) must be before --to (${change.to.toISOString()}).`);
  }
  const handle = client.schedule.getHandle(id);
  try {
    await handle.describe();
    switch (change.kind) {
      case "pause":
        return await handle.pause(change.note ?? "paused with agl schedule pause");
      case "resume":
        return await handle.unpause(change.note ?? "resumed with agl schedule resume");
      case "trigger":
        return await handle.trigger();
      case "delete":
        return await handle.delete();
      case "backfill":
        // Each missed slot runs in turn; a slot's own id keys its deploy, so backfilling it twice makes one version.
        return await handle.backfill({ start: change.from, end: change.to, overlap: ScheduleOverlapPolicy.BUFFER_ALL });
    }
  } catch (error) {
    throw notFound(error, id);
  }
}

export async function listSchedules(client: Client): Promise<ScheduleSummary[]> {
  const schedules: ScheduleSummary[] = [];
  for await (const schedule of client.schedule.list()) {
    if (schedule.action?.workflowType === "trainingCycle") schedules.push(schedule);
  }
  return schedules.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

export function memoOf(schedule: { memo?: Record<string, unknown> }): ScheduleMemo["agl"] | undefined {
  return (schedule.memo as ScheduleMemo | undefined)?.agl;
}

function notFound(error: unknown, id: string): unknown {
  return error instanceof ScheduleNotFoundError ? new NotFoundError(`Schedule "${id}" does not exist. List schedules with: agl schedule list`) : error;
}

/** Every schedule, described, as `agl schedule list --json` prints it (and the dashboard shows it). */
export async function listScheduleJson(client: Client, store: Store) {
  const summaries = await listSchedules(client);
  const described = await Promise.all(summaries.map((summary) => describeSchedule(client, summary.scheduleId)));
  return Promise.all(described.map((description) => scheduleJson(description, store)));
}

/** The documented JSON form of a schedule (README: "JSON output"). */
export async function scheduleJson(description: ScheduleDescription, store: Store) {
  const memo = memoOf(description);
  const recent = description.info.recentActions.map((action) => ({
    scheduledAt: action.scheduledAt.toISOString(),
    startedAt: action.takenAt.toISOString(),
    cycleId: action.action.workflow.workflowId,
  }));
  const cycles = await store.cycles.findMany(recent.map((run) => run.cycleId));
  return {
    id: description.scheduleId,
    agent: memo?.agent ?? null,
    dataset: memo?.dataset ?? null,
    trafficWindowMs: memo?.trafficMs ?? null,
    cron: memo?.cron ?? null,
    everyMs: memo?.everyMs ?? null,
    timezone: memo?.timezone ?? null,
    paused: description.state.paused,
    note: description.state.note ?? null,
    overlap: "skip",
    nextRuns: description.info.nextActionTimes.map((time) => time.toISOString()),
    recentRuns: recent.map((run) => {
      const cycle = cycles.get(run.cycleId);
      return { ...run, outcome: cycle?.outcome ?? (cycle ? "running" : null), detail: cycle?.outcomeDetail ?? null };
    }),
    runsTaken: description.info.numActionsTaken,
    runsSkippedOverlap: description.info.numActionsSkippedOverlap,
  };
}

import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Client } from "@temporalio/client";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { createAgentRunner } from "../../agents/runner.ts";
import type { LoadedConfig } from "../../config/load.ts";
import { installPath } from "../../config/paths.ts";
import { changeSchedule, createSchedule, describeSchedule, listSchedules, parseDuration, type ScheduleRequest } from "../../runtime/schedules.ts";
import type { RunningWorker } from "../../runtime/worker.ts";
import { ConflictError, NotFoundError } from "../../store/errors.ts";
import type { trainingCycle } from "../../workflows/training-cycle.ts";
import type { CycleResult } from "../../workflows/types.ts";
import { importSubset } from "../support/datasets.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, startTestWorker, testConfig } from "../support/temporal.ts";

describe("nightly runs on real Temporal Schedules (dev server)", () => {
  let db: TestStore;
  let config: LoadedConfig;
  let temporal: Awaited<ReturnType<typeof connectClient>>;
  let client: Client;
  let worker: RunningWorker;
  const created: string[] = [];

  beforeAll(async () => {
    db = await openTestStore("pglite");
    config = testConfig({ cycle: { minTrafficRollouts: 6 } });
    temporal = await connectClient(config);
    client = temporal.client;
    worker = await startTestWorker(config, db.store);
    await importSubset(db.store, "mini", 8, 4);
  });
  afterAll(async () => {
    for (const id of created) await changeSchedule(client, id, { kind: "delete" }).catch(() => undefined);
    await worker?.stop();
    await temporal?.close();
    await db?.close();
  });

  const uniqueId = (name: string) => `${name}-${randomBytes(3).toString("hex")}`;
  async function create(request: Omit<ScheduleRequest, "id"> & { id?: string }) {
    const id = request.id ?? uniqueId("s");
    const description = await createSchedule({ client, store: db.store, config, request: { ...request, id } });
    created.push(id);
    return description;
  }

  /** Waits for the schedule's n-th run to start, then for that cycle's result. */
  async function nthRun(id: string, n: number): Promise<{ cycleId: string; scheduledAt: Date; result: CycleResult }> {
    for (let tries = 0; ; tries++) {
      const actions = (await describeSchedule(client, id)).info.recentActions;
      if (actions.length >= n) {
        const action = actions[n - 1]!;
        const result = await client.workflow.getHandle<typeof trainingCycle>(action.action.workflow.workflowId).result();
        return { cycleId: action.action.workflow.workflowId, scheduledAt: action.scheduledAt, result };
      }
      expect(tries, `run ${n} of ${id} never started`).toBeLessThan(300);
      await sleep(100);
    }
  }

  test("a paused schedule, triggered, runs a cycle to its outcome; the cycle's trigger names the schedule", async () => {
    const description = await create({ agent: "post-analyzer", dataset: "mini", cron: "0 2 * * *", paused: true });
    expect(description.state.paused).toBe(true);
    await changeSchedule(client, description.scheduleId, { kind: "trigger" });
    const run = await nthRun(description.scheduleId, 1);

    expect(run.cycleId.startsWith(`cy-post-analyzer-sched-${description.scheduleId}-`)).toBe(true);
    // The fake model and the seeded optimizer decide the same on every run: on "mini" no candidate clears the gate.
    expect(run.result).toMatchObject({ outcome: "kept", deployedVersion: null, collect: { failed: 0 } });
    const cycle = await db.store.cycles.get(run.cycleId);
    expect(cycle).toMatchObject({ trigger: `schedule:${description.scheduleId}`, outcome: run.result.outcome, dataset: "mini" });
    expect((await listSchedules(client)).map((s) => s.scheduleId)).toContain(description.scheduleId);
    // An ordinary Temporal Schedule: the Temporal CLI lists it too.
    const listed = await execa(installPath(config.temporal.cli), ["schedule", "list", "--address", config.temporal.address!, "--output", "json"]);
    expect(listed.stdout).toContain(description.scheduleId);
  });

  test("next run times follow the cron expression in its time zone, and intervals align to the epoch", async () => {
    const kolkata = await create({ agent: "post-analyzer", dataset: "mini", cron: "30 9 29 2 *", timezone: "Asia/Kolkata" });
    expect(kolkata.info.nextActionTimes.slice(0, 2).map((t) => t.toISOString())).toEqual(["2028-02-29T04:00:00.000Z", "2032-02-29T04:00:00.000Z"]);
    const newYork = await create({ agent: "post-analyzer", dataset: "mini", cron: "0 2 29 2 *", timezone: "America/New_York" });
    expect(newYork.info.nextActionTimes[0]!.toISOString()).toBe("2028-02-29T07:00:00.000Z");

    const week = 7 * 86_400_000;
    const before = Date.now();
    const weekly = await create({ agent: "post-analyzer", dataset: "mini", everyMs: week, paused: true });
    await changeSchedule(client, weekly.scheduleId, { kind: "resume" });
    const next = (await describeSchedule(client, weekly.scheduleId)).info.nextActionTimes.slice(0, 2).map((t) => t.getTime());
    const firstSlot = Math.ceil(before / week) * week;
    expect(next).toEqual([firstSlot, firstSlot + week]);
    await changeSchedule(client, weekly.scheduleId, { kind: "pause" });
  });

  test("a schedule that exists, an invalid cron expression, an unknown agent, a bad time zone or a negative duration: a clear error and nothing created", async () => {
    const existing = await create({ agent: "post-analyzer", dataset: "mini", cron: "0 3 * * *", paused: true });
    const before = (await listSchedules(client)).map((s) => s.scheduleId);
    await expect(create({ id: existing.scheduleId, agent: "post-analyzer", dataset: "mini", cron: "0 4 * * *" })).rejects.toThrow(ConflictError);
    expect((await describeSchedule(client, existing.scheduleId)).info.nextActionTimes).toEqual(existing.info.nextActionTimes);

    await expect(create({ id: uniqueId("bad-cron"), agent: "post-analyzer", dataset: "mini", cron: "61 25 * * *" })).rejects.toThrow(/--cron "61 25 \* \* \*" is invalid: Minute is not in range \[0-59\]/);
    await expect(create({ id: uniqueId("bad-cron"), agent: "post-analyzer", dataset: "mini", cron: "every night" })).rejects.toThrow(/not a cron expression/);
    await expect(create({ id: uniqueId("no-agent"), agent: "nope", dataset: "mini", cron: "0 2 * * *" })).rejects.toThrow(/Unknown agent "nope"/);
    await expect(create({ id: uniqueId("no-data"), agent: "post-analyzer", dataset: "nope", cron: "0 2 * * *" })).rejects.toThrow(NotFoundError);
    await expect(create({ id: uniqueId("bad-tz"), agent: "post-analyzer", dataset: "mini", cron: "0 2 * * *", timezone: "Mars/Olympus" })).rejects.toThrow(/not an IANA time zone/);
    await expect(create({ id: uniqueId("both"), agent: "post-analyzer", dataset: "mini", cron: "0 2 * * *", everyMs: 1000 })).rejects.toThrow(/exactly one of --cron/);
    expect(() => parseDuration("-1h", "--every")).toThrow(/must be a positive duration/);
    expect(() => parseDuration("0m", "--every")).toThrow(/must be a positive duration/);
    expect(() => parseDuration("soon", "--traffic")).toThrow(/is not a duration/);
    expect(parseDuration("1h30m", "--every")).toBe(5_400_000);

    expect((await listSchedules(client)).map((s) => s.scheduleId)).toEqual(before);
  });

  test("pause, resume and delete change what describe reports", async () => {
    const schedule = await create({ agent: "post-analyzer", dataset: "mini", cron: "0 2 29 2 *" });
    expect(schedule.state.paused).toBe(false);
    await changeSchedule(client, schedule.scheduleId, { kind: "pause", note: "maintenance" });
    expect((await describeSchedule(client, schedule.scheduleId)).state).toMatchObject({ paused: true, note: "maintenance" });
    await changeSchedule(client, schedule.scheduleId, { kind: "resume" });
    expect((await describeSchedule(client, schedule.scheduleId)).state.paused).toBe(false);
    await changeSchedule(client, schedule.scheduleId, { kind: "delete" });
    await expect(describeSchedule(client, schedule.scheduleId)).rejects.toThrow(NotFoundError);
    await expect(changeSchedule(client, schedule.scheduleId, { kind: "trigger" })).rejects.toThrow(/does not exist/);
  });

  test("--traffic: too little scored traffic ends the run skipped with the counts; enough traffic trains on it", async () => {
    const schedule = await create({ agent: "post-analyzer", trafficMs: 3_600_000, cron: "0 2 * * *", paused: true });
    await changeSchedule(client, schedule.scheduleId, { kind: "trigger" });
    const empty = await nthRun(schedule.scheduleId, 1);
    expect(empty.result.outcome).toBe("skipped");
    expect(empty.result.detail).toMatch(/^skipped: not enough data \(0 rollouts in .* 0 scored, 0 held out with ground truth for validation; needs 6 scored for training and 2 for validation\)$/);
    expect((await db.store.cycles.get(empty.cycleId)).outcome).toBe("skipped");

    // Traffic: the agent answered tasks of a data set with ground truth (as the worker queue records them).
    const { train, validation } = await importSubset(db.store, "traffic-source", 60, 0);
    const run = createAgentRunner(postAnalyzer, fakeKeywordModel());
    const tasks = await db.store.datasets.tasks("traffic-source", [...train, ...validation]);
    await db.store.rollouts.insertMany(
      await Promise.all(
        tasks.map(async (task) => {
          const answer = await run(task.input, postAnalyzer.prompt.seed);
          return {
            id: `ro-traffic-${task.id}`,
            agent: "post-analyzer",
            source: "queue" as const,
            dataset: "traffic-source",
            taskId: task.id,
            resourceName: "post-analyzer",
            resourceVersion: 1,
            candidateId: null,
            cycleId: null,
            phase: null,
            input: task.input,
            output: answer.output,
            status: answer.status,
            error: answer.error,
            latencyMs: answer.latencyMs,
            model: answer.model,
            inputTokens: answer.inputTokens,
            outputTokens: answer.outputTokens,
            traceId: null,
          };
        }),
      ),
    );
    // A triggered run's slot is its trigger time in whole seconds: the traffic must be from an earlier second.
    await sleep(1_000);
    await changeSchedule(client, schedule.scheduleId, { kind: "trigger" });
    const trained = await nthRun(schedule.scheduleId, 2);
    expect(trained.result).toMatchObject({ outcome: "kept", collect: { failed: 0 }, baseline: { failed: 0 } });
    const snapshot = await db.store.datasets.get(`traffic-${trained.cycleId}`);
    expect(snapshot.taskCount).toBeLessThanOrEqual(60);
    expect(trained.result.collect!.rollouts).toBe(snapshot.splits.train);
    expect(trained.result.baseline!.rollouts).toBe(snapshot.splits.validation);
    // Learning from traffic re-ran nothing on the train side: the cycle's own rollouts are validation runs only.
    expect(await db.store.rollouts.listForCycle({ cycleId: trained.cycleId, phase: "collect" })).toEqual([]);
  });

  test("the same slot run twice (a backfill repeated) makes at most one version", async () => {
    const schedule = await create({ agent: "post-analyzer", dataset: "mini", cron: "0 * * * *", paused: true });
    const hourAgo = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000);
    const window = { kind: "backfill" as const, from: new Date(hourAgo.getTime() - 60_000), to: new Date(hourAgo.getTime() + 60_000) };
    const versionsBefore = (await db.store.resources.listVersions("post-analyzer")).length;
    await changeSchedule(client, schedule.scheduleId, window);
    const first = await nthRun(schedule.scheduleId, 1);
    await changeSchedule(client, schedule.scheduleId, window);
    const second = await nthRun(schedule.scheduleId, 2);

    expect(second.cycleId).toBe(first.cycleId);
    expect(first.scheduledAt.getTime()).toBe(hourAgo.getTime());
    expect(second.result.deployedVersion).toBe(first.result.deployedVersion);
    const versionsAfter = (await db.store.resources.listVersions("post-analyzer")).length;
    expect(first.result.outcome).toBe("kept");
    expect(versionsAfter - versionsBefore).toBe(0);
  });
});

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { queueRolloutId } from "../../activities/queue-activities.ts";
import { readDatasetFile } from "../../agents/dataset-file.ts";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import type { LoadedConfig } from "../../config/load.ts";
import { datasetTasks, submissionBaseId, submitTasks } from "../../runtime/submissions.ts";
import type { RunningWorker } from "../../runtime/worker.ts";
import type { Task } from "../../store/datasets.ts";
import { postAnalyzerPrompt } from "../resources/support.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, startTestWorker, testConfig } from "../support/temporal.ts";

describe("the worker queue: agl submit's workflow, processed by workers", () => {
  let handle: TestStore;
  let config: LoadedConfig;
  let temporal: Awaited<ReturnType<typeof connectClient>>;
  let worker: RunningWorker;
  let tasks: Task[];

  const submit = (options: { again?: boolean; tasks?: Task[] } = {}) =>
    submitTasks({ config, store: handle.store, client: temporal.client, agent: postAnalyzer, tasks: options.tasks ?? tasks, source: "test", again: Boolean(options.again) });

  beforeAll(async () => {
    handle = await openTestStore("pglite");
    config = testConfig({ cycle: { batchSize: 4, concurrency: 2, parallelBatches: 2, scorers: ["ground-truth", "judge"] } });
    temporal = await connectClient(config);
    worker = await startTestWorker(config, handle.store, fakeKeywordModel({ latencyMs: 15 }));
    // Tasks of their own: submission ids derive from the tasks, and every test file shares one Temporal server.
    tasks = (await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer)).slice(60, 78);
  });
  afterAll(async () => {
    await worker?.stop();
    await temporal?.close();
    await handle?.close();
  });

  test("a submission runs every task once with the production prompt: queue rollouts with no cycle, their task, their version and rewards", async () => {
    const submission = await submit();
    expect(submission).toMatchObject({ submissionId: submissionBaseId("post-analyzer", tasks), generation: 1, status: "started", tasks: 18 });
    expect(submission.submissionId).toMatch(/^sub-post-analyzer-[0-9a-f]{12}$/);
    const result = await submission.handle!.result();
    expect(result).toMatchObject({ submissionId: submission.submissionId, tasks: 18, ran: 18, skipped: 0, failed: 0, rewarded: 18, rewardFailures: 0, versions: [1] });

    const rollouts = await handle.store.rollouts.getMany(tasks.map((task) => queueRolloutId(submission.submissionId, task.id)));
    expect(rollouts).toHaveLength(18);
    for (const rollout of rollouts) {
      expect(rollout).toMatchObject({ source: "queue", cycleId: null, phase: null, dataset: `submission-${submission.submissionId}`, resourceVersion: 1, candidateId: null, status: "succeeded" });
      expect(rollout.rewards.map((reward) => reward.scorer).sort()).toEqual(["ground-truth", "judge"]);
    }
    expect(rollouts.map((rollout) => rollout.taskId)).toEqual(tasks.map((task) => task.id));
    const perRollout = rollouts.map((rollout) => rollout.rewards.reduce((sum, reward) => sum + reward.value, 0) / 2);
    expect(result.meanReward).toBeCloseTo(perRollout.reduce((a, b) => a + b, 0) / 18, 10);
    // Queue rollouts are traffic: a `--traffic` schedule trains on them.
    const traffic = await handle.store.rollouts.listTraffic({ agent: "post-analyzer", from: new Date(Date.now() - 60_000), to: new Date(Date.now() + 1_000) });
    expect(traffic.map((rollout) => rollout.id).sort()).toEqual(rollouts.map((rollout) => rollout.id).sort());
  });

  test("the same tasks again, even with keys in another order or from a data set, find the submission and run nothing", async () => {
    const count = await handle.store.rollouts.countForAgent({ agent: "post-analyzer" });
    const reordered = tasks.map((task) => ({ split: task.split, expected: task.expected, input: task.input, id: task.id }));
    const again = await submit({ tasks: reordered });
    expect(again).toMatchObject({ submissionId: submissionBaseId("post-analyzer", tasks), generation: 1, status: "existing" });
    expect((await again.handle!.result()).ran).toBe(18);

    await handle.store.datasets.importTasks({ name: "queue-posts", agent: "post-analyzer", source: "test", tasks });
    const fromDataset = await submit({ tasks: await datasetTasks(handle.store, postAnalyzer, "queue-posts") });
    expect(fromDataset.status).toBe("existing");
    expect(fromDataset.submissionId).toBe(again.submissionId);
    expect(await handle.store.rollouts.countForAgent({ agent: "post-analyzer" })).toBe(count);
  });

  test("--again runs the tasks as a new generation, with the prompt labelled production at that time", async () => {
    const production = await handle.store.resources.publish({
      name: "post-analyzer",
      content: postAnalyzerPrompt("- technology: code, software\n- startups: seed round, funding, founders\n- product_management: roadmap\n- general: anything else"),
      parentVersion: 1,
      createdBy: "test",
      labels: [{ label: "production", expectedVersion: 1 }],
    });
    const second = await submit({ again: true });
    const base = submissionBaseId("post-analyzer", tasks);
    expect(second).toMatchObject({ submissionId: `${base}-g2`, generation: 2, status: "started" });
    const result = await second.handle!.result();
    expect(production.version).toBe(2);
    expect(result).toMatchObject({ ran: 18, skipped: 0, versions: [2] });
    const rollouts = await handle.store.rollouts.getMany(tasks.map((task) => queueRolloutId(`${base}-g2`, task.id)));
    expect(new Set(rollouts.map((rollout) => rollout.resourceVersion))).toEqual(new Set([2]));
    // A plain resubmission now finds the latest generation.
    expect(await submit()).toMatchObject({ submissionId: `${base}-g2`, status: "existing" });
    expect(await handle.store.submissions.generations(base)).toEqual([base, `${base}-g2`]);
  });

  test("a submission whose workflow was terminated halfway is resumed by submitting again: the missing tasks run, nothing twice", async () => {
    const more = (await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer)).slice(78, 98);
    await worker.stop();
    worker = await startTestWorker(config, handle.store, fakeKeywordModel({ latencyMs: 120 }));
    const first = await submit({ tasks: more });
    const stored = async () => (await handle.store.submissions.storedRollouts(first.submissionId)).stored;
    for (let tries = 0; (await stored()) < 4; tries++) {
      expect(tries, "the submission never got going").toBeLessThan(300);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await first.handle!.terminate("test: a workflow lost halfway");
    const before = await stored();
    expect(before).toBeLessThan(20);

    const resumed = await submit({ tasks: more });
    expect(resumed).toMatchObject({ submissionId: first.submissionId, status: "resumed" });
    const result = await resumed.handle!.result();
    expect(result.skipped).toBeGreaterThanOrEqual(before);
    expect(result.ran + result.skipped).toBe(20);
    const rollouts = await handle.store.rollouts.getMany(more.map((task) => queueRolloutId(first.submissionId, task.id)));
    expect(rollouts).toHaveLength(20);
    expect(await stored()).toBe(20);
  });
});

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { agl, bundledTasks, createPrivateDatabase, json, type PrivateDatabase, removeDir, scaledEnv, spawnAgl, tempDir } from "./support.ts";

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe("agl submit, worker, feedback, eval and analyze in scaled mode (Temporal dev server + PostgreSQL, fake models)", () => {
  let db: PrivateDatabase;
  let env: Record<string, string>;
  let dir: string;
  let file: string;
  /** Tasks of this file only: submission ids derive from the tasks, and every test file shares one Temporal server. */
  const tasks = bundledTasks().slice(140, 152);
  let worker: ReturnType<typeof spawnAgl> | undefined;
  let submissionId: string;

  beforeAll(async () => {
    db = await createPrivateDatabase();
    env = scaledEnv(db, { AGL_CYCLE_SCORERS: '["ground-truth","human","proxy"]', AGL_PROXY_REWARDS: '{"engaged": 1}' });
    dir = tempDir("agl-cli-submit-");
    file = join(dir, "tasks.jsonl");
    writeFileSync(file, tasks.map((task) => JSON.stringify(task)).join("\n") + "\n");
  });
  afterAll(async () => {
    worker?.kill("SIGKILL");
    await worker?.catch(() => undefined);
    await db?.close();
    removeDir(dir);
    removeDir(env?.AGL_DATA_DIR);
  });

  test("bad submissions exit 2 with the reason and store nothing", async () => {
    const bad = join(dir, "bad.jsonl");
    writeFileSync(bad, [JSON.stringify(tasks[0]), JSON.stringify(tasks[1]), '{"id": "x", "input": {"content": ""}}'].join("\n") + "\n");
    const cases: [string[], RegExp][] = [
      [["submit", bad, "--agent", "post-analyzer"], /bad\.jsonl:3: input does not match agent "post-analyzer": input\.content: must not be empty\. Nothing was imported\./],
      [["submit", file, "--dataset", "posts", "--agent", "post-analyzer"], /exactly one of a FILE and --dataset/],
      [["submit", "--agent", "post-analyzer"], /exactly one of a FILE and --dataset/],
      [["submit", file, "--agent", "nobody"], /Unknown agent "nobody"/],
      [["submit", "--dataset", "missing", "--agent", "post-analyzer"], /Dataset "missing" does not exist/],
    ];
    for (const [args, message] of cases) {
      const result = await agl(args, { env });
      expect(result.exitCode, `${args.join(" ")}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    expect(await db.count("rollouts")).toBe(0);
    expect(await db.count("datasets")).toBe(0);
  });

  test("agl submit enqueues, a separate agl worker runs it; the same file again runs nothing, --again runs a new generation", async () => {
    const submitted = await agl(["submit", file, "--agent", "post-analyzer", "--json"], { env });
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    const first = json(submitted);
    expect(first).toEqual({ submissionId: expect.stringMatching(/^sub-post-analyzer-[0-9a-f]{12}$/), agent: "post-analyzer", dataset: `submission-${first.submissionId}`, tasks: 12, generation: 1, status: "started", rollouts: 0, result: null });
    submissionId = first.submissionId;
    // Queued: nothing runs until a worker polls the task queue.
    expect(await db.count("rollouts")).toBe(0);

    worker = spawnAgl(["worker"], { env, timeoutMs: 120_000 });
    const followed = await agl(["submit", file, "--agent", "post-analyzer", "--wait", "--json"], { env, timeoutMs: 60_000 });
    expect(followed.exitCode, followed.stderr).toBe(0);
    const done = json(followed);
    expect(done).toMatchObject({ submissionId, status: "existing", rollouts: 12, result: { submissionId, tasks: 12, ran: 12, skipped: 0, failed: 0, rewarded: 12, versions: [1] } });
    expect(await db.count("rollouts", "source = 'queue' AND cycle_id IS NULL AND dataset = $1 AND resource_version = 1", [`submission-${submissionId}`])).toBe(12);
    expect(await db.count("rewards", "scorer = 'ground-truth'")).toBe(12);

    const human = await agl(["submit", file, "--agent", "post-analyzer"], { env });
    expect(human.exitCode).toBe(0);
    expect(human.stderr).toContain(`Already submitted: 12 tasks for post-analyzer as ${submissionId}, 12 rollouts stored; nothing new runs. Pass --again`);
    expect(human.stdout.trim()).toBe(submissionId);

    const again = await agl(["submit", file, "--agent", "post-analyzer", "--again", "--wait", "--json"], { env, timeoutMs: 60_000 });
    expect(again.exitCode, again.stderr).toBe(0);
    expect(json(again)).toMatchObject({ submissionId: `${submissionId}-g2`, generation: 2, status: "started", rollouts: 12, result: { ran: 12 } });
    expect(await db.count("rollouts")).toBe(24);
    worker.kill("SIGTERM");
    await worker;
    worker = undefined;
  });

  test("agl feedback records a human reward, once per feedback id; out-of-range or unknown rollouts exit 2", async () => {
    const id = (await db.query<{ id: string }>("SELECT id FROM rollouts WHERE dataset = $1 ORDER BY id LIMIT 1", [`submission-${submissionId}`]))[0]!.id;
    const recorded = await agl(["feedback", id, "--rating", "2", "--comment", "sentiment is off", "--user", "ana", "--feedback-id", "fb-cli", "--json"], { env });
    expect(recorded.exitCode, recorded.stderr).toBe(0);
    expect(json(recorded)).toEqual({
      created: true,
      reward: { rolloutId: id, scorer: "human", value: -0.5, reason: 'rated 2/5 by ana: "sentiment is off"', details: { rating: 2, comment: "sentiment is off", user: "ana" }, dedupeKey: "fb-cli", createdAt: expect.stringMatching(ISO_TIME) },
    });
    const repeated = await agl(["feedback", id, "--rating", "2", "--comment", "sentiment is off", "--user", "ana", "--feedback-id", "fb-cli"], { env });
    expect(repeated.exitCode).toBe(0);
    expect(repeated.stdout).toContain("Already recorded as feedback fb-cli");
    const cases: [string[], RegExp][] = [
      [["feedback", id, "--rating", "9"], /--rating: must be at most 5\. Nothing was recorded\./],
      [["feedback", id, "--rating", "four"], /--rating: must be a whole number from 1 to 5/],
      [["feedback", id], /give exactly one of rating \(1-5\) and thumbs/],
      [["feedback", "ro-missing", "--thumbs", "up"], /Rollout "ro-missing" does not exist/],
      [["feedback", id, "--rating", "5", "--feedback-id", "fb-cli"], /already recorded as "rated 2\/5 by ana/],
    ];
    for (const [args, message] of cases) {
      const result = await agl(args, { env });
      expect(result.exitCode, `${args.join(" ")}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    expect(await db.count("rewards", "scorer = 'human'")).toBe(1);
  });

  test("agl eval adds the judge's rewards once; a second run adds none; posted scorers and bad times exit 2", async () => {
    const first = await agl(["eval", "--agent", "post-analyzer", "--scorer", "judge", "--since", "1h", "--json"], { env });
    expect(first.exitCode, first.stderr).toBe(0);
    expect(json(first)).toEqual({ agent: "post-analyzer", since: expect.stringMatching(ISO_TIME), scorers: ["judge"], rollouts: 24, scored: 24, alreadyScored: 0, notScorable: 0, failed: 0, failures: [] });
    const reasons = await db.query<{ reason: string; value: number }>("SELECT reason, value FROM rewards WHERE scorer = 'judge'");
    expect(reasons).toHaveLength(24);
    expect(reasons.every((reward) => /^rated [1-5]\/5 by fake\/fake-judge: /.test(reward.reason))).toBe(true);

    const second = await agl(["eval", "--agent", "post-analyzer", "--scorer", "judge"], { env });
    expect(second.exitCode).toBe(0);
    expect(second.stdout).toContain("24 rollouts of post-analyzer x judge: 0 rewards added, 24 already scored, 0 not scorable, 0 failed.");
    expect(await db.count("rewards", "scorer = 'judge'")).toBe(24);

    for (const [args, message] of [
      [["eval", "--agent", "post-analyzer", "--scorer", "human"], /Scorer "human" is not computed: human rewards come from feedback/],
      [["eval", "--agent", "post-analyzer", "--since", "last week"], /--since "last week" is neither a time/],
      [["eval", "--agent", "nobody"], /Unknown agent "nobody"/],
    ] as [string[], RegExp][]) {
      const result = await agl(args, { env });
      expect(result.exitCode, `${args.join(" ")}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });

  test("agl analyze: per version, the reward of the configured scorers with its interval, accuracy, confusion and percentiles", async () => {
    const result = await agl(["analyze", "--agent", "post-analyzer", "--json"], { env });
    expect(result.exitCode, result.stderr).toBe(0);
    const analysis = json(result);
    expect(analysis).toMatchObject({ agent: "post-analyzer", since: null, scorers: ["ground-truth", "human", "proxy"] });
    expect(analysis.versions).toHaveLength(1);
    const [v1] = analysis.versions;
    expect(Object.keys(v1).sort()).toEqual(["confusion", "failed", "fieldAccuracy", "firstAt", "lastAt", "latencyMs", "reward", "rewardByScorer", "rollouts", "tokens", "version"]);
    expect(v1).toMatchObject({ version: 1, rollouts: 24, failed: 0, reward: { n: 24 }, rewardByScorer: { "ground-truth": { n: 24 }, human: { n: 1, mean: -0.5 }, judge: { n: 24 } } });
    expect(v1.reward.low).toBeLessThanOrEqual(v1.reward.mean);
    expect(v1.reward.high).toBeGreaterThanOrEqual(v1.reward.mean);
    expect(v1.fieldAccuracy.category.total).toBe(24);
    expect(v1.confusion.category.counts.flat().reduce((a: number, b: number) => a + b, 0)).toBe(24);
    expect(v1.latencyMs.p50).toBeLessThanOrEqual(v1.latencyMs.p99);
    expect(v1.tokens.p50).toBeGreaterThan(0);

    const table = await agl(["analyze", "--agent", "post-analyzer"], { env });
    expect(table.exitCode).toBe(0);
    expect(table.stdout).toMatch(/VERSION +ROLLOUTS +FAILED +REWARD +95% CI +LATENCY ms p50\/p90\/p99 +TOKENS p50\/p90\/p99\n/);
    expect(table.stdout).toMatch(/\nv1 +24 +0 +-?\d\.\d{3} \(n=24\) +\[-?\d\.\d{3}, -?\d\.\d{3}\]/);
    expect(table.stdout).toContain("category: rows expected, columns answered");
    expect(table.stdout).toMatch(/v1 against ground truth: category \d+\.\d% \(\d+\/24\), sentiment \d+\.\d% \(\d+\/24\)/);

    const unknown = await agl(["analyze", "--agent", "nobody"], { env });
    expect(unknown.exitCode).toBe(2);
  });
});

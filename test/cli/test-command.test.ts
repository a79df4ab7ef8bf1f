import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { agl, createPrivateDatabase, json, type PrivateDatabase, removeDir, scaledEnv } from "./support.ts";

/**
 * `agl test`: a prompt measured on a split through the worker queue (scaled mode: the shared Temporal
 * dev server, a PostgreSQL database of its own), with intervals, a paired comparison and a CI gate.
 */
describe("agl test (scaled mode)", () => {
  let db: PrivateDatabase;
  let env: Record<string, string>;
  let cycle: any;
  const TEST_TASKS = 60;

  beforeAll(async () => {
    db = await createPrivateDatabase();
    env = scaledEnv(db);
    const started = await agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "posts", "--wait", "--json"], { env, timeoutMs: 150_000 });
    expect(started.exitCode, started.stderr).toBe(0);
    cycle = json(started);
    expect(cycle.outcome).toBe("deployed");
  }, 180_000);
  afterAll(async () => {
    await db?.close();
    removeDir(env?.AGL_DATA_DIR);
  });

  test("the production prompt on the test split: its mean reward with a 95% interval, per scorer and field, its confusion matrix", async () => {
    const result = await agl(["test", "--agent", "post-analyzer", "--dataset", "posts", "--json"], { env, timeoutMs: 120_000 });
    expect(result.exitCode, result.stderr).toBe(0);
    const report = json(result);
    expect(report).toMatchObject({ agent: "post-analyzer", dataset: "posts", split: "test", tasks: TEST_TASKS, repeats: 1, difference: null });
    const [production] = report.contenders;
    expect(production).toMatchObject({ contender: "v2", description: "production (v2)", rollouts: TEST_TASKS, failed: 0, reward: { n: TEST_TASKS } });
    expect(production.reward.low).toBeLessThan(production.reward.mean);
    expect(production.reward.high).toBeGreaterThan(production.reward.mean);
    expect(Object.keys(production.rewardByScorer)).toEqual(["ground-truth"]);
    expect(Object.keys(production.fieldAccuracy).sort()).toEqual(["category", "sentiment"]);
    const counted = (matrix: { counts: number[][] }) => matrix.counts.flat().reduce((sum, count) => sum + count, 0);
    expect(counted(production.confusion.category)).toBe(TEST_TASKS);
    // Its rollouts are the evaluation's, on the test split: the same tasks the cycle measured after its decision.
    expect(await db.count("rollouts", "cycle_id = $1 AND phase = 'test'", [report.evaluationId])).toBe(TEST_TASKS);
    expect(production.reward.mean).toBeCloseTo(cycle.test.deployed.mean, 10);
  });

  test("--against runs both on the same tasks and reports their paired difference; --repeat runs each task K times", async () => {
    const result = await agl(["test", "--agent", "post-analyzer", "--dataset", "posts", "--against", "1", "--repeat", "2", "--json"], { env, timeoutMs: 120_000 });
    expect(result.exitCode, result.stderr).toBe(0);
    const report = json(result);
    const [production, incumbent] = report.contenders;
    expect(incumbent).toMatchObject({ contender: "v1", description: "v1", rollouts: 2 * TEST_TASKS });
    expect(report.difference).toMatchObject({ of: "v2", against: "v1", n: TEST_TASKS });
    expect(report.difference.mean).toBeCloseTo(production.reward.mean - incumbent.reward.mean, 10);
    expect(report.difference.mean).toBeCloseTo(cycle.test.difference.mean, 10);
  });

  test("a cycle's candidate can be measured too, by cycle/id", async () => {
    const candidate = `${cycle.cycleId}/${cycle.best.contender}`;
    const result = await agl(["test", "--agent", "post-analyzer", "--dataset", "posts", "--candidate", candidate, "--json"], { env, timeoutMs: 120_000 });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(json(result).contenders[0]).toMatchObject({ contender: cycle.best.contender, description: candidate, rollouts: TEST_TASKS });
  });

  test("--fail-under is a CI gate: exit 1 below the threshold, 0 at or above it", async () => {
    const failing = await agl(["test", "--agent", "post-analyzer", "--dataset", "posts", "--fail-under", "0.99"], { env, timeoutMs: 120_000 });
    expect(failing.exitCode).toBe(1);
    expect(failing.stderr).toMatch(/error: production \(v2\): mean reward -?\d\.\d{3} is below --fail-under 0\.99\./);
    const passing = await agl(["test", "--agent", "post-analyzer", "--dataset", "posts", "--fail-under", "-1"], { env, timeoutMs: 120_000 });
    expect(passing.exitCode, passing.stderr).toBe(0);
    expect(passing.stdout).toContain("production (v2)");
  });

  test("bad requests exit 2 and run nothing", async () => {
    const before = await db.count("rollouts", "phase = 'test'");
    const invalid = async (args: string[], message: string | RegExp) => {
      const result = await agl(["test", "--agent", "post-analyzer", "--dataset", "posts", ...args], { env });
      expect(result.exitCode, result.stderr).toBe(2);
      expect(result.stderr).toMatch(message);
    };
    await invalid(["--fail-under", "3"], /--fail-under must be a number from -1 to 1, got "3"/);
    await invalid(["--version", "9"], /has no version 9/);
    await invalid(["--version", "2", "--label", "production"], /Give at most one of --version, --label and --candidate/);
    await invalid(["--against", "production"], /production \(v2\) and production \(v2\) are the same prompt/);
    await invalid(["--candidate", "r1c2"], /--candidate "r1c2" must be CYCLE\/CANDIDATE/);
    await invalid(["--split", "train", "--candidate", `${cycle.cycleId}/r9c9`], /r9c9/);
    expect(await db.count("rollouts", "phase = 'test'")).toBe(before);
  });
});

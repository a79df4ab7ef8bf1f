import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { agl, createPrivateDatabase, json, type PrivateDatabase, removeDir, scaledEnv } from "./support.ts";

/** Training now on what was already collected: `agl cycle start --traffic WINDOW | --since TIME`, the path a scheduled traffic run takes. */
describe("agl cycle start on live traffic (scaled mode)", () => {
  let db: PrivateDatabase;
  let env: Record<string, string>;
  beforeAll(async () => {
    db = await createPrivateDatabase();
    env = scaledEnv(db);
  });
  afterAll(async () => {
    await db?.close();
    removeDir(env?.AGL_DATA_DIR);
  });

  test("a window without enough scored traffic ends skipped with the counts, like a scheduled run", async () => {
    const result = await agl(["cycle", "start", "--agent", "post-analyzer", "--traffic", "24h", "--wait", "--json"], { env, timeoutMs: 90_000 });
    expect(result.exitCode, result.stderr).toBe(0);
    const cycle = json(result);
    expect(cycle.outcome).toBe("skipped");
    expect(cycle.detail).toMatch(/^skipped: not enough data \(0 rollouts in \S+ to \S+, 0 scored, 0 held out with ground truth for validation; needs 20 scored for training and 5 for validation\)$/);
    expect(await db.count("rollouts")).toBe(0);
  });

  test("queue traffic of the last hour trains the agent: --traffic and --since take the same path", { timeout: 240_000 }, async () => {
    const submitted = await agl(["submit", "--dataset", "posts", "--agent", "post-analyzer", "--wait", "--json"], { env, timeoutMs: 120_000 });
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    expect(json(submitted).result).toMatchObject({ tasks: 300, ran: 300, failed: 0 });

    const started = await agl(["cycle", "start", "--agent", "post-analyzer", "--since", "1h", "--wait", "--json"], { env, timeoutMs: 150_000 });
    expect(started.exitCode, started.stderr).toBe(0);
    const cycle = json(started);
    expect(cycle.outcome).toBe("deployed");
    // The window was frozen into a data set of its own: about 70% learned from as it happened, 30% held out.
    const [frozen] = await db.query<{ name: string; source: string }>("SELECT name, source FROM datasets WHERE name = $1", [`traffic-${cycle.cycleId}`]);
    expect(frozen!.source).toMatch(/^traffic \S+ to \S+$/);
    const splits = await db.query<{ split: string; n: string }>("SELECT split, count(*) AS n FROM tasks WHERE dataset = $1 GROUP BY split ORDER BY split", [frozen!.name]);
    expect(splits.map((row) => row.split)).toEqual(["train", "validation"]);
    expect(splits.reduce((sum, row) => sum + Number(row.n), 0)).toBe(300);
    expect(cycle.baseline.rollouts).toBe(Number(splits[1]!.n));
    expect(cycle.collect).toMatchObject({ rollouts: Number(splits[0]!.n), failed: 0 });

    const both = await agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "posts", "--traffic", "1h"], { env });
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain("Give exactly one of --dataset D, --traffic WINDOW and --since TIME.");
    const future = await agl(["cycle", "start", "--agent", "post-analyzer", "--since", "2099-01-01"], { env });
    expect(future.exitCode).toBe(2);
    expect(future.stderr).toContain("--since 2099-01-01 is not in the past.");
    const badWindow = await agl(["cycle", "start", "--agent", "post-analyzer", "--traffic", "yesterday"], { env });
    expect(badWindow.exitCode).toBe(2);
    expect(badWindow.stderr).toContain("--traffic");
  });
});

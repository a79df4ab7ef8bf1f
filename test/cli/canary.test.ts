import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "vitest";
import { inject } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { agl, cleanEnv, json, removeDir, tempDir } from "./support.ts";
import { GOOD_PROMPT } from "../canary/traffic.ts";

const NAME = postAnalyzer.prompt.resource;
let db: TestStore;
let data: string;
let env: Record<string, string>;

beforeAll(async () => {
  data = tempDir("agl-canary-cli-");
  db = await openTestStore("postgres");
  await db.store.resources.publish({ name: NAME, content: postAnalyzer.prompt.seed, parentVersion: null, createdBy: "test", labels: [{ label: "production", expectedVersion: null }] });
  await db.store.resources.publish({ name: NAME, content: GOOD_PROMPT, parentVersion: 1, createdBy: "test" });
  // No worker polls this task queue: the guard's workflow waits, which is all these commands need.
  env = cleanEnv({ DATABASE_URL: db.connection as string, AGL_DATA_DIR: data, TEMPORAL_ADDRESS: inject("temporalAddress"), AGL_TASK_QUEUE: `cli-canary-${randomBytes(3).toString("hex")}` });
});
afterAll(async () => {
  await db?.close();
  removeDir(data);
});

const labels = async () => (await db.store.resources.labelled(NAME)).map((entry) => [entry.label, entry.version.version, entry.weight]);

test("agl deploy --canary refuses bad input with exit 2 and a clear error, leaving the labels as they were", async () => {
  const before = await labels();
  const refused = async (args: string[], message: string) => {
    const result = await agl(["deploy", "--agent", postAnalyzer.id, ...args], { env });
    expect(result.exitCode, result.stdout).toBe(2);
    expect(result.stderr).toBe(`error: ${message}\n`);
  };
  await refused(["--version", "2", "--canary", "150%"], "A canary's weight is the share of keyed traffic it serves: more than 0 and at most 100 (percent), got 150. Nothing was changed.");
  await refused(["--version", "2", "--canary", "-5%"], "A canary's weight is the share of keyed traffic it serves: more than 0 and at most 100 (percent), got -5. Nothing was changed.");
  await refused(["--version", "2", "--canary", "lots"], '--canary "lots" is not a percentage: use e.g. 10% or 2.5%. Nothing was changed.');
  await refused(["--version", "9", "--canary", "10%"], 'Resource "post-analyzer" has no version 9 (versions 1-2 exist).');
  expect(await labels()).toEqual(before);
});

test("agl deploy --canary starts a canary; a second one is refused; agl canary status shows it; agl canary promote ends it", async () => {
  const started = await agl(["deploy", "--agent", postAnalyzer.id, "--version", "2", "--canary", "10%", "--actor", "user:cli", "--json"], { env });
  expect(started.exitCode, started.stderr).toBe(0);
  const canary = json<{ id: string; status: string; weight: number; canaryVersion: number; baselineVersion: number }>(started);
  expect(canary).toMatchObject({ status: "running", weight: 10, canaryVersion: 2, baselineVersion: 1 });
  expect(await labels()).toEqual([
    ["canary", 2, 10],
    ["production", 1, null],
  ]);

  const again = await agl(["deploy", "--agent", postAnalyzer.id, "--version", "2", "--canary", "5%"], { env });
  expect(again.exitCode).toBe(2);
  expect(again.stderr).toMatch(new RegExp(`^error: Agent "post-analyzer" already has a running canary, ${canary.id} \\(v2 at 10% against v1\\): one canary per agent at a time\\.`));
  expect(await labels()).toEqual([
    ["canary", 2, 10],
    ["production", 1, null],
  ]);

  const status = await agl(["canary", "status", postAnalyzer.id], { env });
  expect(status.exitCode, status.stderr).toBe(0);
  expect(status.stdout).toContain(`Canary ${canary.id} of post-analyzer: running, v2 at 10% of keyed traffic against production v1`);

  const promoted = await agl(["canary", "promote", postAnalyzer.id, "--actor", "user:cli", "--reason", "metrics look right"], { env });
  expect(promoted.exitCode, promoted.stderr).toBe(0);
  expect(promoted.stdout).toBe(`Canary ${canary.id} promoted by user:cli: production v1 -> v2; its guard ends.\n`);
  expect(await labels()).toEqual([["production", 2, null]]);
  const history = await agl(["prompts", "history", postAnalyzer.id, "--json"], { env });
  expect(json<{ kind: string; actor: string; reason: string }[]>(history)[0]).toMatchObject({ kind: "canary_promoted", actor: "user:cli", reason: "metrics look right" });
});

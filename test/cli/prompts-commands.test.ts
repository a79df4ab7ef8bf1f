import { existsSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { connectStore, type Store } from "../../store/index.ts";
import { postAnalyzerPrompt, publishPostAnalyzer } from "../resources/support.ts";
import { agl, type AglResult, cleanEnv, createPrivateDatabase, embeddedEnv, json, type PrivateDatabase, removeDir, tempDir } from "./support.ts";

const USER = `user:${userInfo().username}`;
const variant = (technology: string) => postAnalyzerPrompt(`- technology: ${technology}\n- startups: founders\n- product_management: roadmaps\n- general: anything else`);

function expectInvalid(result: AglResult, message: string | RegExp): void {
  expect(result.exitCode, result.stderr).toBe(2);
  expect(result.stdout).toBe("");
  if (typeof message === "string") expect(result.stderr).toBe(`error: ${message}\n`);
  else expect(result.stderr).toMatch(message);
}

function expectOk(result: AglResult): void {
  expect(result.exitCode, result.stderr).toBe(0);
}

describe("agl prompts on PostgreSQL, with no Temporal server reachable", () => {
  let db: PrivateDatabase;
  let store: Store;
  let env: Record<string, string>;
  let dir: string;

  beforeAll(async () => {
    db = await createPrivateDatabase();
    store = await connectStore(db.url);
    await publishPostAnalyzer(store, [postAnalyzer.prompt.seed, variant("code"), variant("chips\nand more chips")]);
    dir = tempDir("agl-cli-prompts-");
    // Nothing listens on port 1: a command that needed Temporal would fail.
    env = cleanEnv({ AGL_DATA_DIR: join(dir, "data"), AGL_MODEL: "fake", DATABASE_URL: db.url, TEMPORAL_ADDRESS: "127.0.0.1:1" });
  });
  afterAll(async () => {
    await store?.close();
    await db?.close();
    removeDir(dir);
  });

  async function eventCount(): Promise<number> {
    return db.count("resource_events");
  }

  test("rollback moves production to an earlier version, audited with the OS user and the reason", async () => {
    const result = await agl(["prompts", "rollback", "post-analyzer", "--to", "1", "--reason", "v3 confuses chips"], { env });
    expectOk(result);
    expect(result.stdout).toBe(`post-analyzer: production rolled back v3 -> v1 by ${USER} (v3 confuses chips).\n`);
    expect((await store.resources.getByLabel("post-analyzer", "production")).version).toBe(1);
    const [latest] = await store.resources.events("post-analyzer", 1);
    expect(latest).toMatchObject({ kind: "rolled_back", label: "production", fromVersion: 3, toVersion: 1, actor: USER, reason: "v3 confuses chips" });

    const promoted = await agl(["prompts", "promote", "post-analyzer", "--version", "3", "--label", "production", "--actor", "ops-bot", "--json"], { env });
    expectOk(promoted);
    expect(json(promoted)).toMatchObject({ name: "post-analyzer", kind: "labelled", label: "production", fromVersion: 1, toVersion: 3, actor: "ops-bot", reason: null });
  });

  test("a rollback that is not backwards, names a missing version, or loses the compare-and-set exits 2 and writes nothing", async () => {
    const before = await eventCount();
    const [forward, missing, stale, usage, unknownAgent] = await Promise.all([
      agl(["prompts", "rollback", "post-analyzer", "--to", "3"], { env }),
      agl(["prompts", "rollback", "post-analyzer", "--to", "9"], { env }),
      agl(["prompts", "rollback", "post-analyzer", "--to", "1", "--expected-version", "2"], { env }),
      agl(["prompts", "rollback", "post-analyzer", "--to", "zero"], { env }),
      agl(["prompts", "rollback", "nope", "--to", "1"], { env }),
    ]);
    expectInvalid(forward, /^error: A rollback moves "production" of "post-analyzer" to an earlier version: it points at version 3, and version 3 is not earlier\./);
    expectInvalid(missing, 'Resource "post-analyzer" has no version 9 (versions 1-3 exist).');
    expectInvalid(stale, 'Label "production" of "post-analyzer" points at version 3, not version 2 as expected: someone moved it first. Nothing was changed.');
    expectInvalid(usage, /--to must be a positive whole number, got "zero"/);
    expectInvalid(unknownAgent, 'Unknown agent "nope". Known agents: post-analyzer, funding-extractor, support-reply.');
    expect(await eventCount()).toBe(before);
  });

  test("promote creates a label; diff shows each component's changed lines; history lists the audit trail", async () => {
    const promoted = await agl(["prompts", "promote", "post-analyzer", "--version", "2", "--label", "candidate", "--reason", "try code"], { env });
    expectOk(promoted);
    expect(promoted.stdout).toBe(`post-analyzer: candidate moved (new label) -> v2 by ${USER} (try code).\n`);

    const [diff, diffJson, history, historyJson, list] = await Promise.all([
      agl(["prompts", "diff", "post-analyzer", "2", "3"], { env }),
      agl(["prompts", "diff", "post-analyzer", "1", "3", "--json"], { env }),
      agl(["prompts", "history", "post-analyzer"], { env }),
      agl(["prompts", "history", "post-analyzer", "--json"], { env }),
      agl(["prompts", "list", "post-analyzer", "--json"], { env }),
    ]);
    for (const result of [diff, diffJson, history, historyJson, list]) expectOk(result);
    expect(diff.stdout).toContain("--- post-analyzer v2\n+++ post-analyzer v3\n");
    expect(diff.stdout).toMatch(
      /── categories \(modified\) ─+\n@@ -1,4 \+1,5 @@\n-- technology: code\n\+- technology: chips\n\+and more chips\n - startups: founders\n - product_management: roadmaps\n - general: anything else\n/,
    );
    expect(diff.stdout).toMatch(/── instructions \(unchanged\) ─+\n/);
    const components = json(diffJson).components as { component: string; change: string }[];
    expect(components.map((c) => [c.component, c.change])).toEqual([
      ["instructions", "unchanged"],
      ["categories", "modified"],
      ["sentiments", "unchanged"],
      ["examples", "unchanged"],
    ]);

    const events = json(historyJson) as { kind: string; label: string | null; fromVersion: number | null; toVersion: number; actor: string }[];
    expect(events.slice(0, 3).map((e) => [e.kind, e.label, e.fromVersion, e.toVersion, e.actor])).toEqual([
      ["labelled", "candidate", null, 2, USER],
      ["labelled", "production", 1, 3, "ops-bot"],
      ["rolled_back", "production", 3, 1, USER],
    ]);
    expect(history.stdout.split("\n")[0]).toMatch(/^TIME +EVENT +LABEL +FROM +TO +ACTOR +REASON$/);
    expect(history.stdout).toMatch(/rolled_back +production +v3 +v1 +user:\S+ +v3 confuses chips/);

    const versions = json(list) as Record<string, unknown>[];
    expect(versions.map((v) => [v.version, v.labels])).toEqual([
      [1, []],
      [2, ["candidate"]],
      [3, ["production"]],
    ]);
    expect(Object.keys(versions[0]!)).toEqual(["name", "version", "labels", "parentVersion", "createdBy", "createdAt", "note", "metrics", "content"]);
  });

  test("publish checks the file against the agent first: invalid content exits 2 with the reason and writes nothing", async () => {
    const good = join(dir, "good.json");
    writeFileSync(good, JSON.stringify(variant("robots")));
    const dropped = variant("robots");
    dropped.components.instructions = "Classify.\n{{categories}}\n{{examples}}";
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify(dropped));
    const broken = join(dir, "broken.json");
    writeFileSync(broken, "{");

    const before = { versions: await db.count("resource_versions"), events: await eventCount() };
    const [invalid, malformed, missing] = await Promise.all([
      agl(["prompts", "publish", "post-analyzer", "--file", bad], { env }),
      agl(["prompts", "publish", "post-analyzer", "--file", broken], { env }),
      agl(["prompts", "publish", "post-analyzer", "--file", join(dir, "absent.json")], { env }),
    ]);
    expectInvalid(invalid, 'Invalid prompt for resource "post-analyzer": "instructions" lost placeholder {{sentiments}} the agent needs. Nothing was published.');
    expectInvalid(malformed, new RegExp(`^error: ${broken.replaceAll("/", "\\/").replaceAll(".", "\\.")} is not valid JSON: `));
    expectInvalid(missing, `Cannot read ${join(dir, "absent.json")}: ENOENT.`);
    expect({ versions: await db.count("resource_versions"), events: await eventCount() }).toEqual(before);

    const published = await agl(["prompts", "publish", "post-analyzer", "--file", good, "--label", "production", "--note", "robots", "--json"], { env });
    expectOk(published);
    expect(json(published)).toMatchObject({ version: 4, parentVersion: 3, labels: ["production"], createdBy: USER, note: "robots", content: variant("robots") });
  });
});

test("in the embedded default, rollback opens only the store: no Temporal dev server is started", async () => {
  const home = tempDir("agl-cli-prompts-embedded-");
  try {
    const dataDir = join(home, "data");
    const env = embeddedEnv(dataDir);
    // The first command creates the PGlite database (initdb): seconds on a busy machine.
    const options = { env, cwd: home, timeoutMs: 60_000 };
    const file = join(home, "v.json");
    writeFileSync(file, JSON.stringify(postAnalyzer.prompt.seed));
    expectOk(await agl(["prompts", "publish", "post-analyzer", "--file", file, "--label", "production"], options));
    writeFileSync(file, JSON.stringify(variant("gears")));
    expectOk(await agl(["prompts", "publish", "post-analyzer", "--file", file, "--label", "production"], options));
    const rollback = await agl(["prompts", "rollback", "post-analyzer", "--to", "1", "--json"], options);
    expectOk(rollback);
    expect(json(rollback)).toMatchObject({ kind: "rolled_back", fromVersion: 2, toVersion: 1 });
    expect(existsSync(join(dataDir, "pglite"))).toBe(true);
    expect(existsSync(join(dataDir, "temporal"))).toBe(false);
  } finally {
    removeDir(home);
  }
}, 180_000);

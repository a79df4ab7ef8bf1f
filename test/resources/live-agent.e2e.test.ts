import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type LiveAgentRun, createLiveAgentRunner } from "../../agents/live-runner.ts";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { createPromptClient, type PromptClientOptions, PromptUnavailableError } from "../../client/prompt-client.ts";
import { versionJson } from "../../store/resources.ts";
import type { NewRollout } from "../../store/rollouts.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { postAnalyzerPrompt, publishPostAnalyzer, scratchDirs, startApiServer } from "./support.ts";

const TTL_MS = 1_500;
const POST = { content: "Great coffee this morning" };
// v1 (the seed) has no word of the post, so the fake model answers "general"; v2 describes technology with "coffee".
const ANSWER_BY_VERSION: Record<number, string> = { 1: "general", 2: "technology" };
const v2 = postAnalyzerPrompt(
  [
    "- technology: software, hardware, AI, programming, gadgets and coffee",
    "- startups: founding, funding and growing a young company",
    "- product_management: roadmaps, user research, priorities and shipping features",
    "- general: anything else, such as daily life, food, sport, travel or family",
  ].join("\n"),
);

let handle: TestStore;
const scratch = scratchDirs("agl-prompt-cache-");
const cacheDir = () => scratch.make();

beforeAll(async () => {
  handle = await openTestStore("pglite");
  await publishPostAnalyzer(handle.store, [postAnalyzer.prompt.seed, v2]);
  // The first agent run of a process pays for loading Mastra's pipeline; the timed tests should not.
  const resource = versionJson(await handle.store.resources.getVersion(postAnalyzer.prompt.resource, 1));
  await createLiveAgentRunner(postAnalyzer, { get: async () => ({ resource, version: 1, freshness: "fresh", checkedAt: Date.now(), arm: "production" }) }, { model: fakeKeywordModel() })(POST);
});
afterAll(async () => {
  await handle?.close();
  scratch.removeAll();
});

/** One request served by the live agent: the run, when it started, and the rollout it stores. */
interface Served {
  run: LiveAgentRun;
  startedAt: number;
  rollout: NewRollout;
}

function liveAgent(options: Omit<PromptClientOptions, "ttlMs">) {
  const client = createPromptClient({ ...options, ttlMs: TTL_MS });
  const runner = createLiveAgentRunner(postAnalyzer, client, { model: fakeKeywordModel({ latencyMs: 5 }) });
  const idPrefix = `ro-live-${randomBytes(4).toString("hex")}`;
  let sequence = 0;
  const serve = async (): Promise<Served> => {
    const startedAt = Date.now();
    const run = await runner(POST);
    const id = `${idPrefix}-${String(++sequence).padStart(4, "0")}`;
    const rollout: NewRollout = {
      id,
      agent: postAnalyzer.id,
      source: "queue",
      dataset: null,
      taskId: null,
      resourceName: run.prompt.resource,
      resourceVersion: run.prompt.version,
      candidateId: null,
      cycleId: null,
      phase: null,
      input: POST,
      output: run.output,
      status: run.status,
      error: run.error,
      latencyMs: Math.round(run.latencyMs),
      model: run.model,
      inputTokens: run.inputTokens,
      outputTokens: run.outputTokens,
      traceId: null,
    };
    return { run, startedAt, rollout };
  };
  /** Serves requests one after another until `until` holds for one (at most `limitMs`); returns all of them. */
  const serveUntil = async (until: (served: Served) => boolean, limitMs = TTL_MS * 20): Promise<Served[]> => {
    const deadline = Date.now() + limitMs;
    const all: Served[] = [];
    for (;;) {
      const served = await serve();
      all.push(served);
      if (until(served)) return all;
      if (Date.now() > deadline) throw new Error(`no request matched within ${limitMs} ms; last: ${JSON.stringify(served.run.prompt)}`);
    }
  };
  return { client, serve, serveUntil };
}

describe("an agent picks up prompt changes live", () => {
  test("without change events, a rollback reaches the serving agent right after the cache time, and every rollout records the version it used", async () => {
    const server = await startApiServer(handle.store);
    const changes: { from: number | null; to: number; at: number }[] = [];
    let changed: (() => void) | undefined;
    const agent = liveAgent({
      baseUrl: server.url,
      cacheDir: cacheDir(),
      // The time limit on its own: the fallback of a client that cannot subscribe.
      subscribe: false,
      onVersionChange: (change) => {
        changes.push({ ...change, at: Date.now() });
        changed?.();
      },
    });
    try {
      const before = [await agent.serve(), await agent.serve(), await agent.serve()];
      expect(before.map((s) => s.run.prompt.version)).toEqual([2, 2, 2]);
      expect(before[0]!.run.prompt.freshness).toBe("fresh");

      const rolledBackAt = Date.now();
      await handle.store.resources.rollback({ name: postAnalyzer.prompt.resource, toVersion: 1, actor: "user:e2e", reason: "v2 calls coffee technology" });
      const pickedUp = new Promise<void>((resolve) => (changed = resolve));

      // Until the cache time is over the agent keeps v2; the very first request after it asks the server
      // again (If-None-Match), gets the rolled-back version at once and runs with it.
      const untilSwitch = await agent.serveUntil((s) => s.run.prompt.version === 1);
      const first = untilSwitch.at(-1)!;
      expect(untilSwitch.slice(0, -1).every((s) => s.run.prompt.version === 2 && s.run.prompt.freshness === "cached")).toBe(true);
      expect(first.run.prompt.freshness).toBe("fresh");
      expect(first.startedAt - before[0]!.startedAt).toBeGreaterThanOrEqual(TTL_MS);
      expect(first.startedAt - before[0]!.startedAt).toBeLessThan(TTL_MS + 1_000);

      await pickedUp;
      expect(changes).toEqual([{ name: postAnalyzer.prompt.resource, selector: "post-analyzer@label=production", from: 2, to: 1, at: expect.any(Number) }]);
      expect(changes[0]!.at - rolledBackAt).toBeLessThan(TTL_MS + 1_000);
      const after = [await agent.serve(), await agent.serve(), await agent.serve()];
      expect(after.map((s) => [s.run.prompt.version, s.run.prompt.freshness])).toEqual([
        [1, "cached"],
        [1, "cached"],
        [1, "cached"],
      ]);

      const served = [...before, ...untilSwitch, ...after];
      expect(await handle.store.rollouts.insertMany(served.map((s) => s.rollout))).toBe(served.length);
      const stored = await handle.store.db
        .selectFrom("rollouts")
        .select(["id", "resource_name", "resource_version", "output", "source", "cycle_id", "status"])
        .where("id", "in", served.map((s) => s.rollout.id))
        .orderBy("id")
        .execute();
      expect(stored).toHaveLength(served.length);
      const versions = stored.map((row) => row.resource_version);
      // Every rollout's answer is the one its recorded version's prompt gives: the version is the one it really ran with.
      for (const row of stored) {
        expect(row).toMatchObject({ resource_name: "post-analyzer", source: "queue", cycle_id: null, status: "succeeded" });
        expect((row.output as { category: string }).category).toBe(ANSWER_BY_VERSION[row.resource_version!]);
      }
      const firstRolledBack = versions.indexOf(1);
      expect(versions.slice(0, firstRolledBack).every((version) => version === 2)).toBe(true);
      expect(versions.slice(firstRolledBack).every((version) => version === 1)).toBe(true);
      expect(firstRolledBack).toBe(served.length - after.length - 1);
    } finally {
      await server.close();
    }
  });

  test("an outage of the server never takes the agent down: it serves the last good copy, from disk after a restart", async () => {
    const server = await startApiServer(handle.store);
    const dir = cacheDir();
    const agent = liveAgent({ baseUrl: server.url, cacheDir: dir, timeoutMs: 1_000 });
    const production = (await handle.store.resources.getByLabel(postAnalyzer.prompt.resource, "production")).version;
    const warm = await agent.serve();
    expect(warm.run.prompt).toMatchObject({ version: production, freshness: "fresh" });
    await server.close();

    // Past the cache time the refresh fails: the agent goes on with the copy it has, marked fallback.
    const duringOutage = await agent.serveUntil((s) => s.run.prompt.freshness === "fallback");
    for (const s of duringOutage) {
      expect(s.run.status).toBe("succeeded");
      expect(s.run.prompt.version).toBe(production);
    }
    const served = await agent.client.get(postAnalyzer.prompt.resource);
    expect(served.error).toMatch(/cannot be reached \(ECONNREFUSED\)/);

    // A restarted agent (a new client, nothing in memory) still starts, from the copy on disk.
    const restarted = liveAgent({ baseUrl: server.url, cacheDir: dir, timeoutMs: 1_000 });
    const fromDisk = await restarted.serve();
    expect(fromDisk.run.prompt).toMatchObject({ version: production, freshness: "fallback" });
    expect(fromDisk.run.output).toEqual({ category: ANSWER_BY_VERSION[production], sentiment: expect.any(String) });

    // Only with no copy anywhere does a request fail, and it says why.
    const neverConnected = liveAgent({ baseUrl: server.url, cacheDir: cacheDir(), timeoutMs: 1_000 });
    const failure = await neverConnected.serve().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(PromptUnavailableError);
    expect((failure as Error).message).toMatch(/^Prompt post-analyzer@label=production is unavailable: http:\/\/127\.0\.0\.1:\d+ cannot be reached \(ECONNREFUSED\); and no copy was saved in /);
  });
});

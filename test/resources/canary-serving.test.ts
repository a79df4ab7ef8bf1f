import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { assignArm } from "../../client/canary-assignment.ts";
import { createPromptClient } from "../../client/prompt-client.ts";
import type { RunningHttpServer } from "../../server/app.ts";
import type { GuardSettings } from "../../store/canaries.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { postAnalyzerPrompt, publishPostAnalyzer, scratchDirs, startApiServer } from "./support.ts";

const NAME = postAnalyzer.prompt.resource;
/** An hour: any change a client picks up in this file reached it through its event stream. */
const LONG_TTL_MS = 3_600_000;
const SETTINGS: GuardSettings = { minRollouts: 20, lookEvery: 10, alpha: 0.05, maxDurationMs: 3_600_000, judgeSampleRate: 0, latencyTolerance: 0.2, heartbeatTimeoutSeconds: 5 };
const KEYS = Array.from({ length: 200 }, (_, index) => `user-${index}`);

let handle: TestStore;
let server: RunningHttpServer;
const scratch = scratchDirs("agl-canary-serving-");

beforeAll(async () => {
  handle = await openTestStore("pglite");
  await publishPostAnalyzer(handle.store, [postAnalyzer.prompt.seed]);
  await handle.store.resources.publish({ name: NAME, content: postAnalyzerPrompt("- technology: code\n- startups: founders\n- product_management: roadmaps\n- general: else"), parentVersion: 1, createdBy: "test" });
  server = await startApiServer(handle.store);
});
afterAll(async () => {
  await server?.close();
  await handle?.close();
  scratch.removeAll();
});

async function servedByServer(key: string): Promise<{ version: number; label: string }> {
  const response = await fetch(`${server.url}/v1/resources/${NAME}?key=${encodeURIComponent(key)}`);
  expect(response.status).toBe(200);
  return (await response.json()) as { version: number; label: string };
}

describe("a canary serves its share of keys, the same keys every time", () => {
  test("the server and the client assign each key the same arm, sticky, at about the weight", async () => {
    const { canary } = await handle.store.canaries.start({ id: "can-serving", agent: postAnalyzer.id, resource: NAME, version: 2, weight: 30, actor: "user:test", settings: SETTINGS });
    expect(canary).toMatchObject({ baselineVersion: 1, canaryVersion: 2, weight: 30, status: "running" });
    const client = createPromptClient({ baseUrl: server.url, ttlMs: LONG_TTL_MS, cacheDir: scratch.make(), subscribe: false });
    const split = { version: 2, weight: 30 };
    let onCanary = 0;
    for (const key of KEYS) {
      const expected = assignArm(NAME, split, key);
      const fromServer = await servedByServer(key);
      expect(fromServer).toMatchObject({ version: expected === "canary" ? 2 : 1, label: expected, canary: split });
      expect((await servedByServer(key)).version).toBe(fromServer.version);
      const fromClient = await client.get(NAME, { key });
      expect([fromClient.version, fromClient.arm]).toEqual([fromServer.version, expected]);
      if (expected === "canary") onCanary++;
    }
    // 200 keys at 30 %: binomial, 4 standard deviations either side.
    expect(onCanary).toBeGreaterThan(60 - 26);
    expect(onCanary).toBeLessThan(60 + 26);
    // Without a key, production.
    expect((await client.get(NAME)).arm).toBe("production");
    expect((await client.get(NAME)).version).toBe(1);
    const combined = await fetch(`${server.url}/v1/resources/${NAME}?key=u1&label=candidate`);
    expect(combined.status).toBe(400);
    expect(((await combined.json()) as { error: { message: string } }).error.message).toBe("query parameter key picks between production and its canary; it cannot be combined with label=candidate.");
    await expect(client.get(NAME, { key: "u1", version: 1 })).rejects.toThrow("A key picks between production and its canary; it cannot be combined with version 1.");
    await handle.store.canaries.conclude({ id: "can-serving", outcome: "rolled_back", actor: "user:test", reason: "done" });
    client.close();
  });

  test("bad canaries are refused with a clear error and leave every label as it was", async () => {
    const labels = async () => (await handle.store.resources.labelled(NAME)).map((entry) => [entry.label, entry.version.version, entry.weight]);
    const before = await labels();
    const start = (overrides: Partial<Parameters<typeof handle.store.canaries.start>[0]>): Promise<Error> =>
      handle.store.canaries.start({ id: `can-bad-${Math.random()}`, agent: postAnalyzer.id, resource: NAME, version: 2, weight: 10, actor: "user:test", settings: SETTINGS, ...overrides }).then(
        () => {
          throw new Error("the start was not refused");
        },
        (error: Error) => error,
      );
    for (const weight of [0, -5, 100.5, Number.NaN]) {
      expect((await start({ weight })).message).toBe(`A canary's weight is the share of keyed traffic it serves: more than 0 and at most 100 (percent), got ${weight}. Nothing was changed.`);
    }
    expect((await start({ version: 9 })).message).toBe('Resource "post-analyzer" has no version 9 (versions 1-2 exist).');
    expect((await start({ version: 1 })).message).toBe('Version 1 of "post-analyzer" is production already: a canary needs another version. Nothing was changed.');
    expect(await labels()).toEqual(before);
    await handle.store.canaries.start({ id: "can-first", agent: postAnalyzer.id, resource: NAME, version: 2, weight: 10, actor: "user:test", settings: SETTINGS });
    const second = await start({});
    expect(second.name).toBe("ConflictError");
    expect(second.message).toMatch(/^Agent "post-analyzer" already has a running canary, can-first \(v2 at 10% against v1\): one canary per agent at a time\./);
    await handle.store.canaries.conclude({ id: "can-first", outcome: "rolled_back", actor: "user:test", reason: "done" });
    expect(await labels()).toEqual(before);
  });
});

describe("change events", () => {
  test("a subscribed client sees a rollback at once, long before its time limit; the audit trail has the canary's events", async () => {
    const changes: { from: number; to: number; at: number }[] = [];
    let changed: (() => void) | undefined;
    const client = createPromptClient({
      baseUrl: server.url,
      ttlMs: LONG_TTL_MS,
      cacheDir: scratch.make(),
      onVersionChange: (change) => {
        changes.push({ from: change.from, to: change.to, at: performance.now() });
        changed?.();
      },
    });
    try {
      await handle.store.resources.moveLabel({ name: NAME, label: "production", toVersion: 2, actor: "user:test" });
      expect((await client.get(NAME)).version).toBe(2);
      await expect.poll(() => client.subscribed(NAME)).toBe(true);
      const seen = new Promise<void>((resolve) => (changed = resolve));
      const rolledBackAt = performance.now();
      await handle.store.resources.rollback({ name: NAME, toVersion: 1, actor: "user:test", reason: "v2 misfiles" });
      await seen;
      expect(changes).toEqual([{ from: 2, to: 1, at: expect.any(Number) }]);
      console.log(`rollback visible to the subscribed client ${Math.round(changes[0]!.at - rolledBackAt)} ms after it returned (time limit: 1 h)`);
      expect(await client.get(NAME)).toMatchObject({ version: 1, freshness: "cached" });
    } finally {
      client.close();
    }
    const kinds = (await handle.store.resources.events(NAME)).map((event) => `${event.kind} ${event.label ?? ""} ${event.fromVersion ?? "-"}->${event.toVersion ?? "-"} ${event.actor}`);
    expect(kinds).toContain("canary_started canary -->2 user:test");
    expect(kinds).toContain("canary_rolled_back canary 2->- user:test");
  });

  test("a client that cannot subscribe falls back to its time limit", async () => {
    const refusing: typeof fetch = (input, init) => (String(input).endsWith("/events") ? Promise.resolve(new Response("no", { status: 404 })) : fetch(input, init));
    const client = createPromptClient({ baseUrl: server.url, ttlMs: 200, revalidateWaitMs: 5_000, cacheDir: scratch.make(), fetch: refusing });
    try {
      const first = await client.get(NAME);
      expect(client.subscribed(NAME)).toBe(false);
      await handle.store.resources.moveLabel({ name: NAME, label: "production", toVersion: first.version === 1 ? 2 : 1, actor: "user:test" });
      expect((await client.get(NAME)).version).toBe(first.version);
      await expect.poll(async () => (await client.get(NAME)).version, { timeout: 10_000 }).toBe(first.version === 1 ? 2 : 1);
    } finally {
      client.close();
    }
  });
});

import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { createPromptClient, type PromptClient, PromptUnavailableError, type ServedPrompt } from "../../client/prompt-client.ts";
import type { RunningHttpServer } from "../../server/app.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { postAnalyzerPrompt, publishPostAnalyzer, scratchDirs, startApiServer } from "./support.ts";

const NAME = postAnalyzer.prompt.resource;
const TTL_MS = 500;

let handle: TestStore;
let server: RunningHttpServer;
const scratch = scratchDirs("agl-client-test-");
const cacheDir = () => scratch.make();

beforeAll(async () => {
  handle = await openTestStore("pglite");
  await publishPostAnalyzer(handle.store, [postAnalyzer.prompt.seed, postAnalyzerPrompt("- technology: code\n- startups: founders\n- product_management: roadmaps\n- general: else")]);
  server = await startApiServer(handle.store, { token: "client-test-token-0123" });
});
afterAll(async () => {
  await server?.close();
  await handle?.close();
  scratch.removeAll();
});

/** The requests a client makes: path, If-None-Match sent, status received. */
function recordingFetch() {
  const requests: { path: string; ifNoneMatch: string | null; authorization: string | null; status: number }[] = [];
  const recording: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    const headers = new Headers(init?.headers);
    requests.push({ path: new URL(String(input)).pathname + new URL(String(input)).search, ifNoneMatch: headers.get("if-none-match"), authorization: headers.get("authorization"), status: response.status });
    return response;
  };
  return { requests, fetch: recording };
}

/** Calls get until `until` holds; the client never blocks on the server once it has a copy, so this polls its state. */
async function getUntil(client: PromptClient, until: (served: ServedPrompt) => boolean, selector = {}): Promise<ServedPrompt> {
  const deadline = Date.now() + TTL_MS * 20;
  for (;;) {
    const served = await client.get(NAME, selector);
    if (until(served)) return served;
    if (Date.now() > deadline) throw new Error(`client never reached the state; last: ${served.freshness} v${served.version}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("after the time limit a slow server gets the stale copy served while the client revalidates in the background with If-None-Match", async () => {
  const recorder = recordingFetch();
  // Waiting 0 ms for the revalidation stands in for a server slower than the wait.
  const client = createPromptClient({ baseUrl: server.url, token: "client-test-token-0123", ttlMs: TTL_MS, revalidateWaitMs: 0, cacheDir: cacheDir(), fetch: recorder.fetch, subscribe: false });
  const first = await client.get(NAME);
  expect(first).toMatchObject({ version: 2, freshness: "fresh" });
  expect(first.resource.rendered).toContain("- technology: code");
  expect((await client.get(NAME)).freshness).toBe("cached");
  expect(recorder.requests).toHaveLength(1);

  const stale = await getUntil(client, (served) => served.freshness === "stale");
  expect(stale.version).toBe(2);
  const confirmed = await getUntil(client, (served) => served.freshness === "cached");
  expect(confirmed.checkedAt).toBeGreaterThan(first.checkedAt);
  expect(recorder.requests).toEqual([
    { path: `/v1/resources/${NAME}?label=production`, ifNoneMatch: null, authorization: "Bearer client-test-token-0123", status: 200 },
    { path: `/v1/resources/${NAME}?label=production`, ifNoneMatch: recorder.requests[1]!.ifNoneMatch, authorization: "Bearer client-test-token-0123", status: 304 },
  ]);
  expect(recorder.requests[1]!.ifNoneMatch).toMatch(/^"[A-Za-z0-9_-]{32}"$/);
});

test("concurrent first gets share one request; a fixed version is fetched once, ever", async () => {
  const recorder = recordingFetch();
  const client = createPromptClient({ baseUrl: server.url, token: "client-test-token-0123", ttlMs: TTL_MS, cacheDir: cacheDir(), fetch: recorder.fetch, subscribe: false });
  const all = await Promise.all(Array.from({ length: 8 }, () => client.get(NAME, { version: 1 })));
  expect(new Set(all.map((served) => served.version))).toEqual(new Set([1]));
  expect(recorder.requests).toEqual([expect.objectContaining({ path: `/v1/resources/${NAME}/versions/1`, status: 200 })]);
  const later = await new Promise<ServedPrompt>((resolve) => setTimeout(() => resolve(client.get(NAME, { version: 1 })), TTL_MS + 50));
  expect(later.freshness).toBe("cached");
  expect(recorder.requests).toHaveLength(1);
});

test("a server that accepts but never answers counts as unreachable after the timeout: the copy is served as fallback", async () => {
  const sockets = new Set<import("node:net").Socket>();
  const hanging: Server = createServer(() => {});
  hanging.on("connection", (socket) => sockets.add(socket));
  await new Promise<void>((resolve) => hanging.listen(0, "127.0.0.1", resolve));
  const dir = cacheDir();
  try {
    const warm = createPromptClient({ baseUrl: server.url, token: "client-test-token-0123", ttlMs: TTL_MS, cacheDir: dir });
    await warm.get(NAME);
    const client = createPromptClient({ baseUrl: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`, ttlMs: TTL_MS, cacheDir: dir, timeoutMs: 200 });
    const started = Date.now();
    const served = await client.get(NAME);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(served).toMatchObject({ version: 2, freshness: "fallback" });
    expect(served.error).toMatch(/cannot be reached \(.*(timeout|aborted).*\)/i);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => hanging.close(resolve));
  }
});

test("with no copy anywhere, an error the server gives (unknown resource, bad token) is the error the caller gets", async () => {
  const client = createPromptClient({ baseUrl: server.url, token: "client-test-token-0123", ttlMs: TTL_MS, cacheDir: cacheDir() });
  await expect(client.get("nope")).rejects.toThrow(PromptUnavailableError);
  await expect(client.get("nope")).rejects.toThrow(/answered 404: Resource "nope" does not exist or has no labels\./);
  await expect(client.get(NAME, { label: "staging" })).rejects.toThrow(/has no label "staging"/);
  const unauthorized = createPromptClient({ baseUrl: server.url, ttlMs: TTL_MS, cacheDir: cacheDir() });
  await expect(unauthorized.get(NAME)).rejects.toThrow(/answered 401: This server needs a token/);
});

test("a damaged copy on disk is ignored, and replaced by the next good answer", async () => {
  const dir = cacheDir();
  writeFileSync(join(dir, `${encodeURIComponent(`${NAME}@label=production`)}.json`), "{not json");
  const offline = createPromptClient({ baseUrl: "http://127.0.0.1:9", ttlMs: TTL_MS, cacheDir: dir });
  await expect(offline.get(NAME)).rejects.toThrow(/no copy was saved in/);
  await createPromptClient({ baseUrl: server.url, token: "client-test-token-0123", ttlMs: TTL_MS, cacheDir: dir }).get(NAME);
  const restarted = createPromptClient({ baseUrl: "http://127.0.0.1:9", ttlMs: TTL_MS, cacheDir: dir });
  expect(await restarted.get(NAME)).toMatchObject({ version: 2, freshness: "fallback" });
});

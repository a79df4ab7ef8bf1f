import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import type { RunningHttpServer } from "../../server/app.ts";
import { RESOURCE_BODY_LIMIT_BYTES } from "../../server/routes/resources.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { postAnalyzerPrompt, publishPostAnalyzer, startApiServer } from "./support.ts";

const NAME = postAnalyzer.prompt.resource;
const v2 = postAnalyzerPrompt("- technology: software, hardware and coffee\n- startups: founders\n- product_management: roadmaps\n- general: anything else");
const v3 = postAnalyzerPrompt("- technology: software\n- startups: founders and funding\n- product_management: roadmaps\n- general: anything else");

let handle: TestStore;
let server: RunningHttpServer;

beforeAll(async () => {
  handle = await openTestStore("pglite");
  await publishPostAnalyzer(handle.store, [postAnalyzer.prompt.seed, v2, v3]);
  server = await startApiServer(handle.store);
});
afterAll(async () => {
  await server?.close();
  await handle?.close();
});

const url = (path: string) => `${server.url}${path}`;
/** Response bodies are checked field by field below; `any` keeps those checks short. */
const jsonOf = (response: Response): Promise<any> => response.json();
const postJson = (path: string, body: unknown) => fetch(url(path), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

/** Every row the resources API could write: compared before and after a rejected request. */
async function snapshot() {
  const db = handle.store.db;
  return {
    versions: await db.selectFrom("resource_versions").select(["name", "version"]).orderBy("name").orderBy("version").execute(),
    labels: await db.selectFrom("resource_labels").select(["name", "label", "version"]).orderBy("name").orderBy("label").execute(),
    events: await db.selectFrom("resource_events").select("id").orderBy("id").execute(),
  };
}

async function expectError(response: Response, status: number, code: string, message: string | RegExp): Promise<void> {
  expect(response.status).toBe(status);
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  if (typeof message === "string") expect(body.error.message).toBe(message);
  else expect(body.error.message).toMatch(message);
}

describe("reading resources", () => {
  test("GET by label (default production) returns the version with a strong ETag; If-None-Match gives 304", async () => {
    const response = await fetch(url(`/v1/resources/${NAME}`));
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-cache");
    const etag = response.headers.get("etag")!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{32}"$/);
    const body = await jsonOf(response);
    expect(body).toMatchObject({ name: NAME, version: 3, labels: ["production"], parentVersion: 2, createdBy: "test", note: null, metrics: {}, content: v3, label: "production", canary: null });
    expect(body.rendered).toContain("- startups: founders and funding");
    expect(new Date(body.createdAt).getTime()).toBeGreaterThan(0);

    const unchanged = await fetch(url(`/v1/resources/${NAME}`), { headers: { "if-none-match": etag } });
    expect(unchanged.status).toBe(304);
    expect(await unchanged.text()).toBe("");
    expect(unchanged.headers.get("etag")).toBe(etag);
    expect((await fetch(url(`/v1/resources/${NAME}`), { headers: { "if-none-match": `"other", W/${etag}` } })).status).toBe(304);

    // A read by label also says which label served it and the canary split, so a read by version has an ETag of its own.
    const byVersion = await fetch(url(`/v1/resources/${NAME}/versions/3`), { headers: { "if-none-match": etag } });
    expect(byVersion.status).toBe(200);
    expect((await fetch(url(`/v1/resources/${NAME}/versions/3`), { headers: { "if-none-match": byVersion.headers.get("etag")! } })).status).toBe(304);
    const older = await fetch(url(`/v1/resources/${NAME}/versions/1`), { headers: { "if-none-match": etag } });
    expect(older.status).toBe(200);
    expect(older.headers.get("etag")).not.toBe(etag);
    expect(await jsonOf(older)).toMatchObject({ version: 1, labels: [], content: postAnalyzer.prompt.seed });
  });

  test("?label= picks another label; the list, the history and the diff are JSON", async () => {
    await handle.store.resources.moveLabel({ name: NAME, label: "candidate", toVersion: 2, actor: "test" });
    expect(await jsonOf(await fetch(url(`/v1/resources/${NAME}?label=candidate`)))).toMatchObject({ version: 2, labels: ["candidate"] });

    const list = await jsonOf(await fetch(url(`/v1/resources/${NAME}/versions`)));
    expect(list.name).toBe(NAME);
    expect(list.versions.map((v: { version: number; labels: string[] }) => [v.version, v.labels])).toEqual([
      [1, []],
      [2, ["candidate"]],
      [3, ["production"]],
    ]);

    const history = await jsonOf(await fetch(url(`/v1/resources/${NAME}/history?limit=2`)));
    expect(history.events).toHaveLength(2);
    expect(history.events[0]).toMatchObject({ name: NAME, kind: "labelled", label: "candidate", fromVersion: null, toVersion: 2, actor: "test", reason: null });

    const diff = await jsonOf(await fetch(url(`/v1/resources/${NAME}/diff?from=2&to=3`)));
    expect(diff).toMatchObject({ name: NAME, from: 2, to: 3 });
    const categories = diff.components.find((c: { component: string }) => c.component === "categories");
    expect(categories.change).toBe("modified");
    expect(categories.unified).toContain("-- technology: software, hardware and coffee\n");
    expect(categories.unified).toContain("+- startups: founders and funding");
  });

  test("unknown resource, version or label: 404 saying what exists; malformed parameters: 400", async () => {
    await expectError(await fetch(url("/v1/resources/nope")), 404, "not_found", 'Resource "nope" does not exist or has no labels.');
    await expectError(await fetch(url(`/v1/resources/${NAME}/versions/9`)), 404, "not_found", `Resource "${NAME}" has no version 9 (versions 1-3 exist).`);
    await expectError(await fetch(url(`/v1/resources/${NAME}?label=staging`)), 404, "not_found", `Resource "${NAME}" has no label "staging" (labels: candidate, production).`);
    await expectError(await fetch(url("/v1/resources/nope/versions")), 404, "not_found", 'Resource "nope" does not exist.');
    await expectError(await fetch(url("/v1/resources/nope/history")), 404, "not_found", 'Resource "nope" does not exist.');
    await expectError(await fetch(url(`/v1/resources/${NAME}/diff?from=1&to=8`)), 404, "not_found", /no version 8/);
    await expectError(await fetch(url(`/v1/resources/${NAME}/versions/abc`)), 400, "invalid_input", 'version must be a positive whole number, got "abc".');
    await expectError(await fetch(url(`/v1/resources/${NAME}/versions/0`)), 400, "invalid_input", /version must be a positive whole number/);
    await expectError(await fetch(url(`/v1/resources/${NAME}?label=${encodeURIComponent("a b")}`)), 400, "invalid_input", /query parameter label must be/);
    await expectError(await fetch(url(`/v1/resources/${NAME}/diff?from=1`)), 400, "invalid_input", /query parameter to must be a positive whole number/);
  });
});

describe("changing resources", () => {
  test("POST a label: promote, compare-and-set, and rollback, each audited", async () => {
    const promoted = await postJson(`/v1/resources/${NAME}/labels/staging`, { version: 1, expectedVersion: null, actor: "user:http-test", reason: "try v1" });
    expect(promoted.status).toBe(200);
    expect(await jsonOf(promoted)).toMatchObject({
      event: { kind: "labelled", label: "staging", fromVersion: null, toVersion: 1, actor: "user:http-test", reason: "try v1" },
      resource: { version: 1, labels: ["staging"] },
    });

    const rolledBack = await postJson(`/v1/resources/${NAME}/labels/production`, { version: 2, expectedVersion: 3, rollback: true, reason: "v3 regressed" });
    expect(rolledBack.status).toBe(200);
    expect((await jsonOf(rolledBack)).event).toMatchObject({ kind: "rolled_back", label: "production", fromVersion: 3, toVersion: 2, actor: "api", reason: "v3 regressed" });

    const forward = await postJson(`/v1/resources/${NAME}/labels/production`, { version: 3 });
    expect((await jsonOf(forward)).event).toMatchObject({ kind: "labelled", fromVersion: 2, toVersion: 3 });
    // Moving production back without saying "rollback" is still recorded as one.
    const back = await postJson(`/v1/resources/${NAME}/labels/production`, { version: 2 });
    expect((await jsonOf(back)).event).toMatchObject({ kind: "rolled_back", fromVersion: 3, toVersion: 2 });
    await handle.store.resources.moveLabel({ name: NAME, label: "production", toVersion: 3, actor: "test" });
  });

  test("POST a version: validated, published, and labelled in one step", async () => {
    const content = postAnalyzerPrompt("- technology: code\n- startups: founders\n- product_management: roadmaps\n- general: anything else");
    const response = await postJson(`/v1/resources/${NAME}/versions`, { content, parentVersion: 3, note: "hand edit", actor: "user:http-test", labels: [{ label: "candidate", expectedVersion: 2 }] });
    expect(response.status).toBe(201);
    expect(response.headers.get("location")).toBe(`/v1/resources/${NAME}/versions/4`);
    expect(await jsonOf(response)).toMatchObject({ version: 4, parentVersion: 3, createdBy: "user:http-test", note: "hand edit", labels: ["candidate"], content });
    expect((await handle.store.resources.getByLabel(NAME, "candidate")).version).toBe(4);
  });

  test("every bad change is a 4xx that writes nothing", async () => {
    const before = await snapshot();
    const labels = `/v1/resources/${NAME}/labels/production`;
    const versions = `/v1/resources/${NAME}/versions`;
    const malformed = await fetch(url(labels), { method: "POST", headers: { "content-type": "application/json" }, body: '{"version": 2' });
    await expectError(malformed, 400, "malformed_json", /^The request body is not valid JSON \(.+\)\. Nothing was written\.$/);
    await expectError(await postJson(labels, { version: "2" }), 400, "invalid_input", /^Invalid request body: version: .*number.*Nothing was written\.$/);
    await expectError(await postJson(labels, { version: 2, colour: "red" }), 400, "invalid_input", /Unrecognized key.*"colour"/);
    await expectError(await postJson(labels, [2]), 400, "invalid_input", /^Invalid request body: body: /);
    await expectError(await postJson(labels, { version: 9 }), 404, "not_found", `Resource "${NAME}" has no version 9 (versions 1-4 exist).`);
    await expectError(await postJson("/v1/resources/nope/labels/production", { version: 1 }), 404, "not_found", 'Resource "nope" does not exist.');
    await expectError(await postJson(`/v1/resources/${NAME}/labels/${encodeURIComponent("bad label")}`, { version: 1 }), 400, "invalid_input", /label must be 1-63 letters/);
    await expectError(await postJson(labels, { version: 1, expectedVersion: 2 }), 409, "conflict", `Label "production" of "${NAME}" points at version 3, not version 2 as expected: someone moved it first. Nothing was changed.`);
    await expectError(await postJson(labels, { version: 4, rollback: true }), 400, "invalid_input", /A rollback moves "production" .* to an earlier version: it points at version 3, and version 4 is not earlier/);
    await expectError(await postJson(`/v1/resources/${NAME}/labels/staging`, { version: 1, rollback: true, expectedVersion: null }), 400, "invalid_input", /a rollback needs an existing label/);

    const dropped = structuredClone(postAnalyzer.prompt.seed);
    dropped.components.instructions = "Classify the post.\n{{categories}}\n{{examples}}";
    await expectError(await postJson(versions, { content: dropped }), 400, "invalid_input", /^Invalid prompt for resource "post-analyzer": "instructions" lost placeholder \{\{sentiments\}\} the agent needs\. Nothing was published\.$/);
    await expectError(await postJson(versions, { content: { ...postAnalyzer.prompt.seed, engine: "mustache" } }), 400, "invalid_input", /unknown engine "mustache"/);
    await expectError(await postJson(versions, { content: postAnalyzer.prompt.seed, parentVersion: 99 }), 404, "not_found", /no version 99/);
    await expectError(await postJson("/v1/resources/nope/versions", { content: postAnalyzer.prompt.seed }), 404, "not_found", 'No agent uses a prompt resource named "nope". Known resources: post-analyzer, funding-extractor, support-reply.');

    const oversized = { content: postAnalyzerPrompt("y".repeat(RESOURCE_BODY_LIMIT_BYTES)) };
    await expectError(await postJson(versions, oversized), 413, "payload_too_large", `The request body is over ${RESOURCE_BODY_LIMIT_BYTES} bytes. Nothing was written.`);
    // Without a Content-Length (chunked upload) the limit is enforced while reading.
    const chunked = await fetch(url(labels), { method: "POST", body: streamOf(JSON.stringify({ version: 1, reason: "z".repeat(RESOURCE_BODY_LIMIT_BYTES) })), duplex: "half" } as RequestInit);
    await expectError(chunked, 413, "payload_too_large", /over 65536 bytes/);

    expect(await snapshot()).toEqual(before);
  });

  test("with a token configured, requests without it are refused", async () => {
    const guarded = await startApiServer(handle.store, { token: "a-token-of-sixteen-chars" });
    try {
      await expectError(await fetch(`${guarded.url}/v1/resources/${NAME}`), 401, "unauthorized", /needs a token/);
      expect((await fetch(`${guarded.url}/v1/resources/${NAME}`, { headers: { authorization: "Bearer a-token-of-sixteen-chars" } })).status).toBe(200);
    } finally {
      await guarded.close();
    }
  });
});

function streamOf(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  return new ReadableStream({
    start(controller) {
      for (let offset = 0; offset < bytes.length; offset += 8_192) controller.enqueue(bytes.subarray(offset, offset + 8_192));
      controller.close();
    },
  });
}

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { ConfigError, loadConfig } from "../../config/load.ts";
import { bundledAgents } from "../../agents/examples.ts";
import { endCanary, guardSettings } from "../../runtime/canaries.ts";
import type { RunningWorker } from "../../runtime/worker.ts";
import { verifyWebhook, WebhookVerificationError } from "../../server/webhooks.ts";
import { agl, cleanEnv, json, removeDir, tempDir } from "../cli/support.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { startTestWorker, testConfig } from "../support/temporal.ts";
import { GOOD_PROMPT } from "./traffic.ts";

const SECRET = "whsec-test-0123456789abcdef0123456789";
const NAME = postAnalyzer.prompt.resource;
const TOLERANCE_SECONDS = 300;

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  answered: number;
}

/**
 * A receiver as a user would write one, checking signatures by hand (not with agl's helper): HMAC-SHA256
 * of `id.timestamp.body`, a timestamp within 5 minutes of its clock, each event id handled once. It
 * answers the first delivery of every event 500 after recording it, as if its answer had been lost,
 * which forces a retry of every event.
 */
class Receiver {
  readonly requests: Received[] = [];
  readonly handled = new Map<string, number>();
  readonly failedOnce = new Set<string>();
  clockOffsetSeconds = 0;
  private server: Server | undefined;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((request, response) => {
      let body = "";
      request.on("data", (chunk: Buffer) => (body += chunk.toString()));
      request.on("end", () => {
        const status = this.answer(request.headers, body);
        this.requests.push({ headers: request.headers, body, answered: status });
        response.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/agl`;
  }

  answer(headers: IncomingHttpHeaders, body: string): number {
    const id = String(headers["webhook-id"] ?? "");
    const timestamp = Number(headers["webhook-timestamp"]);
    const expected = Buffer.from(`v1,${createHmac("sha256", SECRET).update(`${id}.${timestamp}.${body}`).digest("base64")}`);
    const given = Buffer.from(String(headers["webhook-signature"] ?? ""));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 401;
    if (Math.abs(Date.now() / 1000 + this.clockOffsetSeconds - timestamp) > TOLERANCE_SECONDS) return 400;
    if (!this.failedOnce.has(id)) {
      this.failedOnce.add(id);
      return 500;
    }
    if (this.handled.has(id)) return 200;
    this.handled.set(id, this.handled.size);
    return 200;
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

let db: TestStore;
let worker: RunningWorker;
const receiver = new Receiver();
let cliData: string;

beforeAll(async () => {
  cliData = tempDir("agl-webhooks-cli-");
  // PostgreSQL: `agl webhooks deliveries`, a separate process, reads the same database.
  db = await openTestStore("postgres");
  await receiver.start();
});
afterAll(async () => {
  await worker?.stop();
  await receiver.close();
  await db?.close();
  removeDir(cliData);
});

test("every change reaches the receiver signed, each event id handled once after a forced retry; a replay is refused; deliveries are visible", async () => {
  const config = testConfig({ webhooks: [{ url: receiver.url, secret: SECRET, maxAttempts: 5, retryInitialSeconds: 0.2, retryMaxSeconds: 1 }] });
  worker = await startTestWorker(config, db.store);
  const store = db.store;
  await store.resources.publish({ name: NAME, content: postAnalyzer.prompt.seed, parentVersion: null, createdBy: "test", labels: [{ label: "production", expectedVersion: null }] });
  await store.resources.publish({ name: NAME, content: GOOD_PROMPT, parentVersion: 1, createdBy: "test" });
  await store.canaries.start({ id: "can-hooks", agent: postAnalyzer.id, resource: NAME, version: 2, weight: 10, actor: "user:ops", settings: guardSettings(config) });
  await endCanary({ store, config, agent: postAnalyzer.id, outcome: "promoted", actor: "user:ops", reason: "looks good" });
  await store.resources.rollback({ name: NAME, toVersion: 1, actor: "user:ops", reason: "second thoughts" });
  const expected = ["published", "labelled", "published", "canary.started", "canary.promoted", "rolled_back"];

  await expect.poll(() => receiver.handled.size, { timeout: 30_000 }).toBe(expected.length);
  const events = (await store.resources.events(NAME)).reverse();
  const ids = events.map((event) => `evt_${event.id}`);
  // Each event handled exactly once, although every one was delivered twice (the first answer a 500).
  expect([...receiver.handled.keys()].sort()).toEqual([...ids].sort());
  for (const id of ids) expect(receiver.requests.filter((request) => request.headers["webhook-id"] === id).map((request) => request.answered)).toEqual([500, 200]);
  const bodies = new Map(receiver.requests.map((request) => [request.headers["webhook-id"], JSON.parse(request.body) as { type: string; data: Record<string, unknown> }]));
  expect(ids.map((id) => bodies.get(id)!.type)).toEqual(expected);
  expect(bodies.get(ids[4]!)).toMatchObject({ id: ids[4], type: "canary.promoted", data: { resource: NAME, label: "production", fromVersion: 1, toVersion: 2, actor: "user:ops", reason: "looks good" } });

  // A replay: the same request, signature and all, arriving later than the receiver's tolerance.
  const captured = receiver.requests.find((request) => request.answered === 200)!;
  receiver.clockOffsetSeconds = TOLERANCE_SECONDS + 60;
  expect(receiver.answer(captured.headers, captured.body)).toBe(400);
  // Refreshing its timestamp breaks the signature, which covers it.
  const refreshed = { ...captured.headers, "webhook-timestamp": String(Math.floor(Date.now() / 1000) + receiver.clockOffsetSeconds) };
  expect(receiver.answer(refreshed, captured.body)).toBe(401);
  receiver.clockOffsetSeconds = 0;
  // agl's own helper agrees.
  const sentAt = Number(captured.headers["webhook-timestamp"]);
  expect(verifyWebhook({ secret: SECRET, headers: captured.headers, body: captured.body, nowSeconds: sentAt })).toEqual({ id: captured.headers["webhook-id"] });
  expect(() => verifyWebhook({ secret: SECRET, headers: captured.headers, body: captured.body, nowSeconds: sentAt + TOLERANCE_SECONDS + 1 })).toThrow(WebhookVerificationError);
  expect(() => verifyWebhook({ secret: `${SECRET}x`, headers: captured.headers, body: captured.body, nowSeconds: sentAt })).toThrow("no signature matches the body and the secret");

  const listed = await agl(["webhooks", "deliveries", "--json"], { env: cleanEnv({ DATABASE_URL: db.connection as string, AGL_DATA_DIR: cliData }) });
  expect(listed.exitCode, listed.stderr).toBe(0);
  const deliveries = json<{ eventId: string; kind: string; url: string; status: string; attempts: number; lastStatus: number; nextAttemptAt: string | null }[]>(listed);
  expect(deliveries.map((d) => [d.eventId, d.kind, d.status, d.attempts, d.lastStatus, d.nextAttemptAt])).toEqual([...ids].reverse().map((id, index) => [id, [...expected].reverse()[index], "delivered", 2, 200, null]));
  expect(new Set(deliveries.map((d) => d.url))).toEqual(new Set([receiver.url]));
});

test("a webhook URL that is not http(s), a short secret, an unknown event kind, a zero maxDuration or canary weight is refused when the configuration loads", () => {
  const load = (webhook: Record<string, unknown>) => () => loadConfig({ env: {}, agents: bundledAgents, overrides: { webhooks: [{ url: "https://example.test/hook", secret: SECRET, ...webhook }] } });
  expect(load({ url: "ftp://example.test/hook" })).toThrow(ConfigError);
  expect(load({ url: "ftp://example.test/hook" })).toThrow('webhooks.0.url = "ftp://example.test/hook" (from override): expected an http:// or https:// URL');
  expect(load({ secret: "short" })).toThrow('webhooks.0.secret = "short" (from override): expected a secret of at least 24 characters (e.g. the output of openssl rand -hex 32)');
  expect(load({ events: ["deployed"] })).toThrow("webhooks.0.events.0");
  const settings = (overrides: Record<string, unknown>) => () => loadConfig({ env: {}, agents: bundledAgents, overrides });
  expect(settings({ guard: { maxDuration: "0s" } })).toThrow('guard.maxDuration = "0s" (from override): expected a duration longer than 0');
  expect(settings({ guard: { maxDuration: "soon" } })).toThrow('guard.maxDuration = "soon" (from override): expected a duration such as 90s, 30m, 24h or 7d');
  expect(settings({ cycle: { canaryWeight: 0 } })).toThrow("cycle.canaryWeight = 0 (from override): expected more than 0 (percent)");
  expect(settings({ cycle: { canaryWeight: 101 } })).toThrow("cycle.canaryWeight = 101 (from override): expected at most 100 (percent)");
  expect(() => loadConfig({ env: {}, agents: bundledAgents, overrides: { webhooks: [{ url: "https://a.test/h", secret: SECRET }, { url: "https://a.test/h", secret: SECRET }] } })).toThrow(
    "lists https://a.test/h twice: one entry per receiver (merge their events).",
  );
});

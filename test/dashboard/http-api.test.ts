import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { loadConfig } from "../../config/load.ts";
import { createServerApp, type RunningHttpServer, startHttpServer } from "../../server/app.ts";
import { serverRoutes } from "../../server/routes.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, testConfig } from "../support/temporal.ts";
import { RUNNING_CYCLE, type Seeded, seedDashboard } from "./seed.ts";
import { bundledAgents } from "../../agents/examples.ts";

const UI_URL = "http://127.0.0.1:8233";
const TOKEN = "dashboard-token-0123456789";

let handle: TestStore;
let seeded: Seeded;
let open: RunningHttpServer;
let guarded: RunningHttpServer;
let temporal: Awaited<ReturnType<typeof connectClient>>;

beforeAll(async () => {
  handle = await openTestStore("pglite");
  seeded = await seedDashboard(handle.store);
  temporal = await connectClient(testConfig());
  const serve = (server: { token?: string }, withTemporal: boolean) => {
    const config = loadConfig({ env: {}, agents: bundledAgents, overrides: { server } });
    const app = createServerApp({ config, store: handle.store, ...(withTemporal ? { temporal: { client: temporal.client, uiUrl: UI_URL } } : {}) }, serverRoutes);
    return startHttpServer(app, { host: "127.0.0.1", port: 0 });
  };
  [open, guarded] = await Promise.all([serve({}, true), serve({ token: TOKEN }, false)]);
});
afterAll(async () => {
  await open?.close();
  await guarded?.close();
  await temporal?.close();
  await handle?.close();
});

const get = (path: string, init?: RequestInit) => fetch(`${open.url}${path}`, init);
const jsonOf = (response: Response): Promise<any> => response.json();

describe("the page and its JSON", () => {
  test("the page, its script and its style sheet come from this server with a policy that allows nothing else", async () => {
    for (const [path, type] of [
      ["/", "text/html"],
      ["/dashboard/app.js", "text/javascript"],
      ["/dashboard/style.css", "text/css"],
    ] as const) {
      const response = await get(path);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("content-type")).toContain(type);
      expect(response.headers.get("content-security-policy")).toContain("default-src 'none'; script-src 'self'");
      // The one URL in them is the SVG namespace name, which nothing fetches.
      expect((await response.text()).replaceAll("http://www.w3.org/2000/svg", "")).not.toMatch(/https?:\/\//);
    }
  });

  test("agents: the production version, when it was deployed and by what", async () => {
    const body = await jsonOf(await get("/v1/dashboard/agents"));
    expect(body.temporal).toEqual({ namespace: "default", uiUrl: UI_URL });
    expect(body.agents).toEqual([
      expect.objectContaining({
        id: "post-analyzer",
        resource: "post-analyzer",
        production: { version: 3, deployedAt: expect.any(String), deployedBy: `cycle:${seeded.scoredCycles[1]}`, kind: "labelled", reason: expect.stringMatching(/^c1 beat the incumbent by/) },
        latestCycle: expect.objectContaining({ id: RUNNING_CYCLE, phase: "collect", outcome: null }),
      }),
      // The other bundled agents, never run here: no production version, no cycle.
      expect.objectContaining({ id: "funding-extractor", production: null, latestCycle: null }),
      expect.objectContaining({ id: "support-reply", production: null, latestCycle: null }),
    ]);
  });

  test("an agent: analyze's per-version statistics, cycles with phases and a Temporal link, versions, audit trail", async () => {
    const body = await jsonOf(await get("/v1/dashboard/agents/post-analyzer"));
    expect(body.analysis.versions.map((v: any) => v.version)).toEqual(seeded.scoredVersions);
    expect(body.analysis.versions[0].reward).toEqual({ n: 20, mean: expect.any(Number), low: expect.any(Number), high: expect.any(Number) });
    expect(Object.keys(body.analysis.versions[0].fieldAccuracy)).toEqual(["category", "sentiment"]);
    expect(body.cycles.map((cycle: any) => cycle.id)).toEqual([RUNNING_CYCLE, ...[...seeded.scoredCycles].reverse()]);
    const deployed = body.cycles.find((cycle: any) => cycle.id === seeded.scoredCycles[0]);
    expect(deployed).toMatchObject({ trigger: "schedule:nightly", outcome: "deployed", deployedVersion: 2, result: { baseline: { contender: "incumbent" }, best: { contender: "c1" } } });
    expect(deployed.phases.map((phase: any) => [phase.phase, phase.rollouts])).toEqual([
      ["collect", 12],
      ["validate", 16],
    ]);
    expect(deployed.runUrl).toBe(`${UI_URL}/namespaces/default/workflows/${seeded.scoredCycles[0]}`);
    expect(body.cycles[0].progress).toEqual({ phase: "collect", progress: { done: 5, total: 12 } });
    expect(body.versions.map((v: any) => [v.version, v.labels])).toEqual([
      [1, []],
      [2, []],
      [3, ["production"]],
      [4, ["candidate"]],
    ]);
    expect(body.history[0]).toMatchObject({ kind: "labelled", label: "candidate", toVersion: 4, actor: "user:alice" });
  });

  test("rollouts: filtered, with input, output, rewards and their reasons, latency and tokens", async () => {
    const body = await jsonOf(await get("/v1/dashboard/agents/post-analyzer/rollouts?source=otlp&scorer=proxy:thumbs&max=0.5"));
    expect(body.rollouts).toEqual([
      expect.objectContaining({
        id: "ro-otlp-2",
        source: "otlp",
        resourceVersion: 3,
        input: { content: "Rain again, cancelling the picnic" },
        output: { category: "general", sentiment: "negative" },
        latencyMs: expect.any(Number),
        inputTokens: expect.any(Number),
        outputTokens: 14,
        rewards: [expect.objectContaining({ scorer: "proxy:thumbs", value: 0, reason: "user gave a thumbs down" })],
      }),
    ]);
    expect((await jsonOf(await get("/v1/dashboard/agents/post-analyzer/rollouts?limit=5"))).rollouts).toHaveLength(5);
  });

  test("the pulse changes when a label moves", async () => {
    const before = (await jsonOf(await get("/v1/dashboard/pulse?agent=post-analyzer"))).stamp;
    expect((await jsonOf(await get("/v1/dashboard/pulse?agent=post-analyzer"))).stamp).toBe(before);
    await handle.store.resources.moveLabel({ name: seeded.resource, label: "staging", toVersion: 4, actor: "test" });
    expect((await jsonOf(await get("/v1/dashboard/pulse?agent=post-analyzer"))).stamp).not.toBe(before);
  });

  test("bad requests are refused with a sentence saying what was wrong", async () => {
    const cases: [string, number, string][] = [
      ["/v1/dashboard/agents/post-analyzer/rollouts?version=two", 400, 'query parameter version must be a positive whole number, got "two".'],
      ["/v1/dashboard/agents/post-analyzer/rollouts?source=kafka", 400, 'query parameter source must be "queue" or "otlp", got "kafka".'],
      ["/v1/dashboard/agents/post-analyzer/rollouts?min=2", 400, 'query parameter min must be a number from -1 to 1, got "2".'],
      ["/v1/dashboard/agents/post-analyzer/rollouts?min=0.8&max=0.2", 400, "The reward range is empty: min 0.8 is above max 0.2."],
      ["/v1/dashboard/agents/post-analyzer/rollouts?versoin=2", 400, 'unknown query parameter "versoin" (known: version, source, scorer, min, max, limit).'],
      ["/v1/dashboard/agents/nobody", 404, 'Unknown agent "nobody". Known agents: post-analyzer, funding-extractor, support-reply.'],
      ["/v1/dashboard/pulse", 404, 'Unknown agent "". Known agents: post-analyzer, funding-extractor, support-reply.'],
    ];
    for (const [path, status, message] of cases) {
      const response = await get(path);
      expect(response.status, path).toBe(status);
      expect((await jsonOf(response)).error.message, path).toBe(message);
    }
  });

  test("schedules come from Temporal; without a client they are reported unavailable, not failed", async () => {
    const listed = await jsonOf(await get("/v1/dashboard/schedules"));
    expect(listed.available).toBe(true);
    expect(Array.isArray(listed.schedules)).toBe(true);
    expect(await jsonOf(await fetch(`${guarded.url}/v1/dashboard/schedules`, { headers: { authorization: `Bearer ${TOKEN}` } }))).toEqual({ available: false, schedules: [] });
  });
});

describe("with a token (bound beyond loopback)", () => {
  const guardedUrl = (path: string) => `${guarded.url}${path}`;

  test("the page answers a browser without the token with the sign-in form; the API with a JSON 401", async () => {
    const page = await fetch(guardedUrl("/"), { headers: { accept: "text/html,application/xhtml+xml" } });
    expect(page.status).toBe(401);
    expect(await page.text()).toContain('<form method="post" action="/login">');
    for (const path of ["/v1/dashboard/agents", "/dashboard/app.js", "/v1/resources/post-analyzer"]) {
      const refused = await fetch(guardedUrl(path));
      expect(refused.status, path).toBe(401);
      expect((await jsonOf(refused)).error.message).toMatch(/needs a token: send Authorization: Bearer <AGL_TOKEN>, or sign in to the dashboard at \/login/);
    }
  });

  test("signing in with the wrong token is refused and sets no cookie", async () => {
    const wrong = await fetch(guardedUrl("/login"), { method: "POST", body: new URLSearchParams({ token: "not-the-token-0123456789" }), redirect: "manual" });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("set-cookie")).toBeNull();
    expect(await wrong.text()).toContain("That token is not this server's AGL_TOKEN.");
  });

  test("the form and a ?token= link set an HttpOnly, SameSite=Strict session cookie that opens the page and the API", async () => {
    for (const request of [
      fetch(guardedUrl("/login"), { method: "POST", body: new URLSearchParams({ token: TOKEN }), redirect: "manual" }),
      fetch(guardedUrl(`/login?token=${TOKEN}`), { redirect: "manual" }),
    ]) {
      const signedIn = await request;
      expect(signedIn.status).toBe(303);
      expect(signedIn.headers.get("location")).toBe("/");
      const cookie = signedIn.headers.get("set-cookie")!;
      expect(cookie).toMatch(/^agl_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/);
      expect(cookie).not.toContain(TOKEN);
      const session = cookie.split(";")[0]!;
      expect((await fetch(guardedUrl("/"), { headers: { cookie: session } })).status).toBe(200);
      expect((await fetch(guardedUrl("/v1/dashboard/agents"), { headers: { cookie: session } })).status).toBe(200);
    }
    expect((await fetch(guardedUrl("/v1/dashboard/agents"), { headers: { cookie: "agl_session=forged" } })).status).toBe(401);
    expect((await fetch(guardedUrl("/v1/dashboard/agents"), { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });
});

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { loadConfig } from "../../config/load.ts";
import { createServerApp, type RunningHttpServer, startHttpServer } from "../../server/app.ts";
import { REWARD_BODY_LIMIT_BYTES } from "../../server/routes/feedback.ts";
import { serverRoutes } from "../../server/routes.ts";
import type { NewRollout } from "../../store/rollouts.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { bundledAgents } from "../../agents/examples.ts";

function rollout(id: string, fields: Partial<NewRollout> = {}): NewRollout {
  return {
    id,
    agent: postAnalyzer.id,
    source: "otlp",
    dataset: null,
    taskId: null,
    resourceName: postAnalyzer.prompt.resource,
    resourceVersion: 3,
    candidateId: null,
    cycleId: null,
    phase: null,
    input: { content: "We shipped the new roadmap." },
    output: { category: "product_management", sentiment: "positive" },
    status: "succeeded",
    error: null,
    latencyMs: 25,
    model: "fake/fake-keyword",
    inputTokens: 40,
    outputTokens: 6,
    traceId: null,
    ...fields,
  };
}

describe("POST /v1/feedback, POST /v1/outcomes and GET /v1/analysis (agl up's routes)", () => {
  let handle: TestStore;
  let server: RunningHttpServer;
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
  const rewardCount = async () => Number((await handle.store.db.selectFrom("rewards").select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow()).n);
  /** Each bad request: the status, the error code, a message naming the problem, nothing stored, and the server still answering. */
  async function refused(response: Response, status: number, code: string, message: RegExp): Promise<void> {
    const before = await rewardCount();
    expect(response.status).toBe(status);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(code);
    expect(body.error.message).toMatch(message);
    expect(await rewardCount()).toBe(before);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  }

  beforeAll(async () => {
    handle = await openTestStore("pglite");
    await handle.store.rollouts.insertMany([rollout("ro-http-1", { traceId: "4bf92f3577b34da6a3ce929d0e0e4736" }), rollout("ro-http-2", { traceId: "4bf92f3577b34da6a3ce929d0e0e4736" })]);
    const config = loadConfig({ env: {}, agents: bundledAgents, overrides: { rewards: { proxy: { engaged: 0.5, "pipeline-failed": -1 } } } });
    server = await startHttpServer(createServerApp({ config, store: handle.store }, serverRoutes), { host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    await server?.close();
    await handle?.close();
  });

  test("a rating becomes a human reward (201); the same feedbackId again changes nothing (200); another verdict under it is 409", async () => {
    const response = await post("/v1/feedback", { rolloutId: "ro-http-1", rating: 4, comment: "good call", user: "ana", feedbackId: "fb-http-1" });
    expect(response.status).toBe(201);
    const body = (await response.json()) as { created: boolean; reward: Record<string, unknown> };
    expect(body).toEqual({
      created: true,
      reward: {
        rolloutId: "ro-http-1",
        scorer: "human",
        value: 0.5,
        reason: 'rated 4/5 by ana: "good call"',
        details: { rating: 4, comment: "good call", user: "ana" },
        dedupeKey: "fb-http-1",
        createdAt: expect.stringMatching(/Z$/),
      },
    });
    const resend = await post("/v1/feedback", { rolloutId: "ro-http-1", rating: 4, comment: "good call", user: "ana", feedbackId: "fb-http-1" });
    expect(resend.status).toBe(200);
    expect(await resend.json()).toEqual({ ...body, created: false });
    await refused(await post("/v1/feedback", { rolloutId: "ro-http-1", rating: 1, feedbackId: "fb-http-1" }), 409, "conflict", /already recorded as "rated 4\/5 by ana: "good call""/);
    const thumbs = await post("/v1/feedback", { rolloutId: "ro-http-2", thumbs: "down" });
    expect(thumbs.status).toBe(201);
    expect(((await thumbs.json()) as { reward: { value: number } }).reward.value).toBe(-1);
  });

  test("bad feedback: rating out of range, no verdict, unknown rollout, malformed JSON, a body over the limit", async () => {
    await refused(await post("/v1/feedback", { rolloutId: "ro-http-1", rating: 6 }), 400, "invalid_input", /rating: must be at most 5\. Nothing was written/);
    await refused(await post("/v1/feedback", { rolloutId: "ro-http-1", rating: 2.5 }), 400, "invalid_input", /rating: must be a whole number from 1 to 5/);
    await refused(await post("/v1/feedback", { rolloutId: "ro-http-1", comment: "no verdict" }), 400, "invalid_input", /exactly one of rating \(1-5\) and thumbs/);
    await refused(await post("/v1/feedback", { rolloutId: "ro-missing", rating: 3 }), 404, "not_found", /Rollout "ro-missing" does not exist/);
    await refused(await post("/v1/feedback", '{"rolloutId": "ro-http-1", "rating": 4'), 400, "malformed_json", /not valid JSON/);
    const huge = { rolloutId: "ro-http-1", rating: 5, comment: "x".repeat(REWARD_BODY_LIMIT_BYTES) };
    await refused(await post("/v1/feedback", huge), 413, "payload_too_large", new RegExp(`over ${REWARD_BODY_LIMIT_BYTES} bytes`));
  });

  test("an outcome event becomes the configured reward, by rollout or on every rollout of a trace; bad ones are refused", async () => {
    const byTrace = await post("/v1/outcomes", { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", event: "pipeline-failed", outcomeId: "run-17" });
    expect(byTrace.status).toBe(201);
    const traced = (await byTrace.json()) as { created: number; rewards: { rolloutId: string; scorer: string; value: number }[] };
    expect(traced.created).toBe(2);
    expect(traced.rewards.map((r) => [r.rolloutId, r.scorer, r.value])).toEqual([
      ["ro-http-1", "proxy:pipeline-failed", -1],
      ["ro-http-2", "proxy:pipeline-failed", -1],
    ]);
    expect((await post("/v1/outcomes", { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", event: "pipeline-failed", outcomeId: "run-17" })).status).toBe(200);
    expect((await post("/v1/outcomes", { rolloutId: "ro-http-1", event: "engaged", value: 30 })).status).toBe(201);

    await refused(await post("/v1/outcomes", { rolloutId: "ro-http-1", event: "purchased" }), 400, "invalid_input", /Unknown event "purchased": configured events are engaged, pipeline-failed/);
    await refused(await post("/v1/outcomes", { traceId: "00000000000000000000000000000000", event: "engaged" }), 404, "not_found", /No rollout has trace id/);
    await refused(await post("/v1/outcomes", { rolloutId: "ro-http-1", traceId: "4bf9", event: "engaged" }), 400, "invalid_input", /exactly one of rolloutId and traceId/);
    await refused(await post("/v1/outcomes", { rolloutId: "ro-http-1", event: "engaged", occurredAt: "last tuesday" }), 400, "invalid_input", /occurredAt: must be an ISO 8601 time/);
    await refused(await post("/v1/outcomes", "engaged"), 400, "malformed_json", /not valid JSON/);
  });

  test("GET /v1/analysis/:agent answers what agl analyze --json prints; a bad since is 400, an agent nobody knows 404", async () => {
    const response = await fetch(`${server.url}/v1/analysis/post-analyzer?since=1h`);
    expect(response.status).toBe(200);
    const analysis = (await response.json()) as { agent: string; scorers: string[]; versions: { version: number; rollouts: number; rewardByScorer: Record<string, { n: number; mean: number }> }[] };
    expect(analysis.agent).toBe("post-analyzer");
    expect(analysis.scorers).toEqual(["ground-truth"]);
    expect(analysis.versions).toHaveLength(1);
    expect(analysis.versions[0]).toMatchObject({ version: 3, rollouts: 2, rewardByScorer: { human: { n: 2, mean: -0.25 }, "proxy:engaged": { n: 1, mean: 0.5 } } });
    await refused(await fetch(`${server.url}/v1/analysis/post-analyzer?since=soon`), 400, "invalid_input", /query parameter since "soon"/);
    await refused(await fetch(`${server.url}/v1/analysis/nobody`), 404, "not_found", /Unknown agent "nobody"/);
  });
});

import { agentSpecFor, OPTIMIZER_CONTRACT_VERSION } from "../../activities/optimizer-contract.ts";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LanguageModelV2 } from "@ai-sdk/provider";
import { execa } from "execa";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { readDatasetFile } from "../../agents/dataset-file.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { loadConfig } from "../../config/load.ts";
import { installPath } from "../../config/paths.ts";
import { createServerApp, type RunningHttpServer, startHttpServer } from "../../server/app.ts";
import { errorResponse } from "../../server/http-errors.ts";
import { serverRoutes } from "../../server/routes.ts";
import { mountOpenAIRoutes } from "../../server/routes/openai.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { bundledAgents } from "../../agents/examples.ts";

const TOKEN = "test-token-0123456789abcdef";
const SCHEMA = {
  type: "object",
  properties: {
    category: { type: "string", enum: ["technology", "startups", "product_management", "general"] },
    sentiment: { type: "string", enum: ["positive", "neutral", "negative"] },
  },
  required: ["category", "sentiment"],
  additionalProperties: false,
};
const SYSTEM = "Classify the post.\n- technology: software, compilers and kubernetes\n- startups: founders and funding\n- product_management: roadmaps\n- general: anything else\n- positive: love, happy\n- neutral: factual\n- negative: broke, worried";

let handle: TestStore;
let server: RunningHttpServer;
let scratch: string;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "agl-openai-"));
  handle = await openTestStore("pglite");
  // The fake model: deterministic, and it answers any chat with a JSON classification.
  const config = loadConfig({ env: { AGL_MODEL: "fake" }, agents: bundledAgents, overrides: { server: { token: TOKEN } } });
  server = await startHttpServer(createServerApp({ config, store: handle.store }, serverRoutes), { host: "127.0.0.1", port: 0 });
});
afterAll(async () => {
  await server?.close();
  await handle?.close();
  rmSync(scratch, { recursive: true, force: true });
});

function post(path: string, body: unknown, token = TOKEN): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function expectError(response: Response, status: number, code: string, message: string | RegExp): Promise<void> {
  expect(response.status).toBe(status);
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.message).toMatch(message);
}

describe("POST /v1/chat/completions over the fake model", () => {
  test("answers in OpenAI's non-streaming shape, with the schema the caller asked for", async () => {
    const response = await post("/v1/chat/completions", {
      model: "anything",
      messages: [
        { role: "system", content: SYSTEM },
        { role: "user", content: [{ type: "text", text: "Post: The compiler upgrade broke our kubernetes deploy" }] },
      ],
      temperature: 0,
      max_tokens: 32,
      response_format: { type: "json_schema", json_schema: { name: "analysis", schema: SCHEMA } },
      top_p: 1,
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, any>;
    expect(body).toMatchObject({ object: "chat.completion", model: "fake-keyword", choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant" } }] });
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(JSON.parse(body.choices[0].message.content)).toEqual({ category: "technology", sentiment: "negative" });
    expect(body.usage.prompt_tokens).toBeGreaterThan(0);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
  });

  test("GET /v1/models lists the one configured model", async () => {
    const response = await fetch(`${server.url}/v1/models`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await response.json()).toEqual({ object: "list", data: [{ id: "fake-keyword", object: "model", created: 0, owned_by: "fake" }] });
  });

  test("refuses streaming, malformed bodies and missing tokens with the reason", async () => {
    const messages = [{ role: "user", content: "hi" }];
    await expectError(await post("/v1/chat/completions", { model: "m", messages, stream: true }), 400, "invalid_request", /^streaming is not supported/);
    await expectError(await post("/v1/chat/completions", "{not json"), 400, "invalid_request", /^The request body is not valid JSON/);
    await expectError(await post("/v1/chat/completions", { model: "m", messages: [] }), 400, "invalid_request", /^Not a chat completion request: messages: /);
    await expectError(await post("/v1/chat/completions", { model: "m", messages: [{ role: "tool", content: "x" }] }), 400, "invalid_request", /messages\.0\.role/);
    await expectError(await post("/v1/chat/completions", { messages }), 400, "invalid_request", /model: /);
    await expectError(
      await post("/v1/chat/completions", { model: "m", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] }),
      400,
      "invalid_request",
      /messages\.0\.content/,
    );
    await expectError(await post("/v1/chat/completions", { model: "m", messages }, "wrong-token-0123456789"), 401, "unauthorized", /needs a token/);
  });

  test("a failing model is a 502 that says why (the routes mounted on another app, as a worker would)", async () => {
    const app = new Hono();
    app.onError((error, context) => errorResponse(error, context));
    const failingFakeModel: LanguageModelV2 = {
      specificationVersion: "v2",
      provider: "fake",
      modelId: "always-fails",
      supportedUrls: {},
      doGenerate: () => Promise.reject(new Error("context window exceeded (4100 > 2048 tokens)")),
      doStream: () => Promise.reject(new Error("not used")),
    };
    mountOpenAIRoutes(app, failingFakeModel);
    const running = await startHttpServer(app, { host: "127.0.0.1", port: 0 });
    try {
      const response = await fetch(`${running.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }) });
      await expectError(response, 502, "model_failed", "The model fake/always-fails failed: context window exceeded (4100 > 2048 tokens)");
    } finally {
      await running.close();
    }
  });
});

describe("the Python APO optimizer through this endpoint", () => {
  test("critiques and edits over HTTP: four calls to the endpoint, two children from the fake model's answers", async () => {
    const tasks = (await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer)).filter((task) => task.split === "train").slice(0, 12);
    const rollouts = tasks.map((task, index) => {
      // Every other run answered "general/neutral", so half of the runs have a low reward to critique.
      const output = index % 2 === 0 ? { ...task.expected } : { category: "general", sentiment: "neutral" };
      const right = Object.entries(task.expected ?? {}).filter(([field, label]) => output[field as keyof typeof output] === label).length;
      const reward = right - 1;
      return { id: `ro-${task.id}`, task_id: task.id, prompt_id: "incumbent", input: task.input, message: postAnalyzer.message(task.input), output, expected: task.expected, reward, rewards: [{ scorer: "ground-truth", value: reward, reason: `${right} of 2 fields right` }], error: null };
    });
    const components = { ...postAnalyzer.prompt.seed.components };
    const request = {
      schema_version: OPTIMIZER_CONTRACT_VERSION,
      command: "propose",
      request_id: "cy-openai-test/round/1",
      algorithm: "apo",
      seed: 42,
      round: 1,
      params: { branch_factor: 2, minibatch_size: 3, max_tokens: 64 },
      agent: agentSpecFor(postAnalyzer, components),
      prompt: { version: 1, engine: "placeholders", components },
      parents: [{ id: "incumbent", components }],
      rollouts,
      llm: { base_url: `${server.url}/v1`, model: "fake-keyword", api_key: TOKEN, timeout_s: 30 },
    };
    const input = join(scratch, "apo.request.json");
    const output = join(scratch, "apo.response.json");
    writeFileSync(input, JSON.stringify(request));

    const result = await execa(installPath(".venv/bin/python"), ["-m", "agl_optimizer", "propose", "--input", input, "--output", output], { reject: false, timeout: 60_000 });

    expect(result.exitCode, result.stderr).toBe(0);
    const response = JSON.parse(readFileSync(output, "utf8")) as Record<string, any>;
    expect(response).toMatchObject({ schema_version: OPTIMIZER_CONTRACT_VERSION, request_id: request.request_id, algorithm: "apo", seed: 42, round: 1 });
    // The fake answers a prompt without a schema with its first words: APO takes those as a description and a rule, as it would a model's.
    expect(response.candidates.map((candidate: { strategy: string }) => candidate.strategy)).toEqual(["apo-description:sentiment.positive", "apo-rule"]);
    expect(response.candidates[1].components.instructions).toMatch(/\n\nLearned rule: Re: The agent post-analyzer: /);
    expect(response.stats).toMatchObject({ rollouts: 12, llm_calls: 4, rejected_edits: 0 });
  });
});

import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createLanguageModel } from "../../agents/models/index.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { createAgentRunner } from "../../agents/runner.ts";
import { loadConfig } from "../../config/load.ts";

/** A FAKE OpenAI-compatible server: answers /v1/chat/completions with a fixed analysis and records requests. */
let server: Server;
let baseUrl: string;
const requests: { url: string; authorization: string | undefined; body: Record<string, any> }[] = [];

async function readJson(request: IncomingMessage): Promise<Record<string, any>> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

beforeAll(async () => {
  server = createServer(async (request, response) => {
    const body = await readJson(request);
    requests.push({ url: request.url ?? "", authorization: request.headers.authorization, body });
    const content = JSON.stringify({ category: "startups", sentiment: "positive" });
    const completion = {
      id: "chatcmpl-fake",
      object: "chat.completion",
      created: 1,
      model: body.model,
      choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
      usage: { prompt_tokens: 120, completion_tokens: 12, total_tokens: 132 },
    };
    if (body.stream) {
      response.writeHead(200, { "content-type": "text/event-stream" });
      const chunk = { ...completion, object: "chat.completion.chunk", choices: [{ index: 0, delta: { role: "assistant", content }, finish_reason: "stop" }] };
      response.end(`data: ${JSON.stringify(chunk)}\n\ndata: ${JSON.stringify({ ...chunk, choices: [], usage: completion.usage })}\n\ndata: [DONE]\n\n`);
      return;
    }
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify(completion));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

test("OPENAI_BASE_URL selects an OpenAI-compatible endpoint: the agent's system prompt, user message and output schema reach it", async () => {
  const config = loadConfig({ env: { OPENAI_BASE_URL: baseUrl, OPENAI_API_KEY: "sk-test", AGL_MODEL_NAME: "my-model" } });
  expect(config.model.provider).toBe("openai-compatible");
  const run = createAgentRunner(postAnalyzer, createLanguageModel(config));
  const result = await run({ content: "We closed our seed round today!" }, postAnalyzer.prompt.seed);

  expect(result).toMatchObject({ status: "succeeded", output: { category: "startups", sentiment: "positive" }, model: "openai-compatible.chat/my-model" });
  expect(result.inputTokens).toBe(120);
  expect(requests).toHaveLength(1);
  const [request] = requests;
  expect(request!.url).toBe("/v1/chat/completions");
  expect(request!.authorization).toBe("Bearer sk-test");
  expect(request!.body.model).toBe("my-model");
  expect(request!.body.messages[0]).toMatchObject({ role: "system" });
  expect(request!.body.messages[0].content).toContain("- startups: founding, funding and growing a young company");
  expect(request!.body.messages.at(-1).content).toContain("We closed our seed round today!");
  expect(request!.body.response_format?.type).toBe("json_schema");
  expect(request!.body.response_format.json_schema.schema.properties.category.enum).toEqual(["technology", "startups", "product_management", "general"]);
});

import { existsSync } from "node:fs";
import { Hono } from "hono";
import { afterAll, expect, test } from "vitest";
import { createLanguageModel, LOCAL_MODEL_NAME, localModelPath } from "../../agents/models/index.ts";
import { loadConfig } from "../../config/load.ts";
import { INSTALL_ROOT } from "../../config/paths.ts";
import { type RunningHttpServer, startHttpServer } from "../../server/app.ts";
import { mountOpenAIRoutes } from "../../server/routes/openai.ts";

// The project's own defaults: the local model where `npm run setup` puts it.
const config = loadConfig({ env: {}, cwd: INSTALL_ROOT });
let server: RunningHttpServer | undefined;
afterAll(() => server?.close());

test("the real local model (SmolLM2 on the CPU) answers one short chat through the endpoint", { timeout: 120_000 }, async () => {
  const path = localModelPath(config);
  if (!existsSync(path)) throw new Error(`The local model file ${path} is missing: run \`npm run setup\` in ${INSTALL_ROOT} to install it.`);
  expect(config.model.provider).toBe("local");
  const app = new Hono();
  mountOpenAIRoutes(app, createLanguageModel(config));
  server = await startHttpServer(app, { host: "127.0.0.1", port: 0 });

  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: LOCAL_MODEL_NAME,
      messages: [
        { role: "system", content: "You are a helpful assistant. Answer in one short sentence." },
        { role: "user", content: "What is a compiler?" },
      ],
      temperature: 0,
      max_tokens: 24,
    }),
  });

  expect(response.status).toBe(200);
  const body = (await response.json()) as { model: string; choices: { message: { role: string; content: string } }[]; usage: Record<string, number> };
  expect(body.model).toBe(LOCAL_MODEL_NAME);
  expect(body.choices[0]!.message.role).toBe("assistant");
  expect(body.choices[0]!.message.content.trim().length).toBeGreaterThan(0);
  expect(body.usage.prompt_tokens).toBeGreaterThan(10);
  expect(body.usage.completion_tokens).toBeGreaterThan(0);
  expect(body.usage.completion_tokens).toBeLessThanOrEqual(24);
});

import { randomUUID } from "node:crypto";
import type { LanguageModelV2, LanguageModelV2CallOptions, LanguageModelV2FinishReason, LanguageModelV2Prompt } from "@ai-sdk/provider";
import type { Hono } from "hono";
import { z } from "zod";
import { createLanguageModel } from "../../agents/models/index.ts";
import type { RouteModule } from "../app.ts";
import { type BodyWording, HttpError, jsonBodyLimit, parseJsonBody } from "../http-errors.ts";

/** A chat request is a prompt and a few posts; 1 MiB leaves room for any prompt a local model can read. */
const CHAT_BODY_LIMIT_BYTES = 1024 * 1024;

const textPart = z.object({ type: z.literal("text"), text: z.string() });

const chatMessage = z.object({
  role: z.enum(["system", "developer", "user", "assistant"]),
  content: z.union([z.string(), z.array(textPart)]),
});

const responseFormat = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text") }),
  z.object({ type: z.literal("json_object") }),
  z.object({
    type: z.literal("json_schema"),
    json_schema: z.object({ name: z.string().optional(), description: z.string().optional(), schema: z.record(z.string(), z.unknown()).optional() }),
  }),
]);

/** The subset of OpenAI's chat request this endpoint serves; other OpenAI parameters (top_p, seed, user, …) are ignored. */
const chatRequest = z.object({
  model: z.string().min(1),
  messages: z.array(chatMessage).min(1),
  temperature: z.number().min(0).max(2).nullish(),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  response_format: responseFormat.nullish(),
  stream: z.boolean().nullish(),
});

type ChatRequest = z.infer<typeof chatRequest>;

const FINISH_REASONS: Partial<Record<LanguageModelV2FinishReason, string>> = {
  stop: "stop",
  length: "length",
  "content-filter": "content_filter",
  "tool-calls": "tool_calls",
};

/**
 * An OpenAI-compatible chat endpoint in front of the configured model (AGL_MODEL): the Python
 * optimizer's critique and edit calls reach the local model through it, offline. `agl up` serves it;
 * a worker can mount the same routes on its own app with `mountOpenAIRoutes`.
 */
export const openAIRoutes: RouteModule = (app, { config }) => mountOpenAIRoutes(app, createLanguageModel(config));

/**
 * POST /v1/chat/completions (non-streaming) and GET /v1/models. Every request is answered by `model`,
 * whatever its `model` field names: the answer's `model` says which one answered.
 */
export function mountOpenAIRoutes(app: Hono, model: LanguageModelV2): void {
  const limitBody = jsonBodyLimit(CHAT_BODY_LIMIT_BYTES);

  app.get("/v1/models", (context) =>
    context.json({ object: "list", data: [{ id: model.modelId, object: "model", created: 0, owned_by: model.provider }] }),
  );

  app.post("/v1/chat/completions", limitBody, async (context) => {
    const request = parseChatRequest(await context.req.text());
    if (request.stream) throw new HttpError(400, "invalid_request", "streaming is not supported: send stream false or leave it out.");
    let result: Awaited<ReturnType<LanguageModelV2["doGenerate"]>>;
    try {
      result = await model.doGenerate(callOptions(request, context.req.raw.signal));
    } catch (error) {
      throw new HttpError(502, "model_failed", `The model ${model.provider}/${model.modelId} failed: ${(error as Error).message}`);
    }
    const content = result.content.map((part) => (part.type === "text" ? part.text : "")).join("");
    const promptTokens = result.usage.inputTokens ?? 0;
    const completionTokens = result.usage.outputTokens ?? 0;
    return context.json({
      id: `chatcmpl-${randomUUID()}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: model.modelId,
      choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: FINISH_REASONS[result.finishReason] ?? "stop", logprobs: null }],
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    });
  });
}

const CHAT_WORDING: BodyWording = { malformedCode: "invalid_request", invalidCode: "invalid_request", heading: "Not a chat completion request: ", tail: "", maxProblems: 5 };

function parseChatRequest(body: string): ChatRequest {
  return parseJsonBody(body, chatRequest, CHAT_WORDING);
}

function callOptions(request: ChatRequest, abortSignal: AbortSignal): LanguageModelV2CallOptions {
  const maxOutputTokens = request.max_completion_tokens ?? request.max_tokens;
  const format = request.response_format;
  return {
    prompt: toPrompt(request.messages),
    abortSignal,
    ...(request.temperature != null ? { temperature: request.temperature } : {}),
    ...(maxOutputTokens != null ? { maxOutputTokens } : {}),
    ...(format?.type === "json_object" ? { responseFormat: { type: "json" } } : {}),
    ...(format?.type === "json_schema"
      ? { responseFormat: { type: "json", ...(format.json_schema.schema ? { schema: format.json_schema.schema } : {}), ...(format.json_schema.name ? { name: format.json_schema.name } : {}) } }
      : {}),
  };
}

function toPrompt(messages: ChatRequest["messages"]): LanguageModelV2Prompt {
  return messages.map((message) => {
    const text = typeof message.content === "string" ? message.content : message.content.map((part) => part.text).join("");
    if (message.role === "system" || message.role === "developer") return { role: "system", content: text };
    return { role: message.role, content: [{ type: "text", text }] };
  });
}

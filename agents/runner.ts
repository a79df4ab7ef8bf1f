import type { LanguageModelV2 } from "@ai-sdk/provider";
import { Agent } from "@mastra/core/agent";
import { RequestContext } from "@mastra/core/request-context";
import type { PromptContent } from "../store/schema.ts";
import { renderPrompt } from "./prompt-template.ts";
import type { AgentDefinition } from "./types.ts";

// Mastra reports usage to a remote analytics host unless told not to; this tool never phones home.
process.env.MASTRA_TELEMETRY_DISABLED ??= "1";

const INSTRUCTIONS_KEY = "agl.instructions";

export interface AgentRun {
  status: "succeeded" | "failed";
  output: Record<string, unknown> | null;
  error: string | null;
  latencyMs: number;
  inputTokens: number | null;
  outputTokens: number | null;
  model: string;
}

export type AgentRunner = (input: Record<string, unknown>, prompt: PromptContent, signal?: AbortSignal) => Promise<AgentRun>;

/**
 * Builds the Mastra agent for a definition. Its instructions are resolved per request from the
 * request context, so one agent instance serves any prompt version: the incumbent, a candidate, or
 * whatever the resource client fetched a moment ago.
 */
export function createAgentRunner(definition: AgentDefinition, model: LanguageModelV2): AgentRunner {
  const agent = new Agent({
    id: definition.id,
    name: definition.id,
    description: definition.description,
    instructions: ({ requestContext }) => String(requestContext.get(INSTRUCTIONS_KEY) ?? ""),
    model,
  });
  const modelName = `${model.provider}/${model.modelId}`;

  return async (input, prompt, signal) => {
    const requestContext = new RequestContext();
    requestContext.set(INSTRUCTIONS_KEY, renderPrompt(prompt));
    const started = performance.now();
    const failed = (error: string): AgentRun => ({
      status: "failed",
      output: null,
      error,
      latencyMs: performance.now() - started,
      inputTokens: null,
      outputTokens: null,
      model: modelName,
    });
    try {
      const result = await agent.generate(definition.userMessage(input), {
        structuredOutput: { schema: definition.outputSchema },
        requestContext,
        ...(signal ? { abortSignal: signal } : {}),
      });
      // Mastra ends an aborted run without throwing; a cancelled run is not the agent's failure and must not be recorded as one.
      signal?.throwIfAborted();
      if (result.error) return failed(errorText(result.error));
      const parsed = definition.outputSchema.safeParse(result.object);
      if (!parsed.success) return failed(`output does not match the agent's schema: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
      return {
        status: "succeeded",
        output: parsed.data as Record<string, unknown>,
        error: null,
        latencyMs: performance.now() - started,
        inputTokens: result.usage?.inputTokens ?? null,
        outputTokens: result.usage?.outputTokens ?? null,
        model: modelName,
      };
    } catch (error) {
      if (signal?.aborted) throw error;
      return failed(errorText(error));
    }
  };
}

/** Mastra's structured-output errors keep the model's raw answer aside; quoting it shows what went wrong. */
function errorText(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const answer = (error as { details?: { value?: unknown } } | null)?.details?.value;
  return typeof answer === "string" ? `${message} (the model answered ${JSON.stringify(answer.slice(0, 200))})` : message;
}

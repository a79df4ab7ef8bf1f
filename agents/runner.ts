import type { LanguageModelV2 } from "@ai-sdk/provider";
import { Agent } from "@mastra/core/agent";
import type { ToolCall } from "../scorers/types.ts";
import type { PromptContent } from "../store/schema.ts";
import { renderPrompt } from "./prompt-template.ts";
import type { AgentDefinition, MastraAgentLike } from "./types.ts";

// Mastra reports usage to a remote analytics host unless told not to; this tool never phones home.
process.env.MASTRA_TELEMETRY_DISABLED ??= "1";

export interface AgentRun {
  status: "succeeded" | "failed";
  /** The structured answer, or `{text}` for a free-text agent; null when the run failed. */
  output: Record<string, unknown> | null;
  error: string | null;
  latencyMs: number;
  inputTokens: number | null;
  outputTokens: number | null;
  model: string;
  /** The tools the agent called, in order, with their arguments and results. */
  toolCalls: ToolCall[];
}

export type AgentRunner = (input: Record<string, unknown>, prompt: PromptContent, signal?: AbortSignal) => Promise<AgentRun>;

/** What `generate` answers, as far as the loop reads it. */
interface GenerateResult {
  text?: string;
  object?: unknown;
  error?: unknown;
  usage?: { inputTokens?: number; outputTokens?: number };
  toolCalls?: { payload?: { toolCallId?: string; toolName?: string; args?: unknown } }[];
  toolResults?: { payload?: { toolCallId?: string; result?: unknown } }[];
  response?: { modelMetadata?: { modelId?: string; modelProvider?: string } };
}

/**
 * Runs an agent with a given prompt version. The instructions are rendered from the prompt and handed
 * to Mastra per request (`generate(…, {instructions})`), so one agent instance serves any version (the
 * incumbent, a candidate, whatever the prompt client fetched a moment ago) and a user's own Mastra agent
 * keeps its model, tools and memory. `model` is the model a `model` agent without its own runs on.
 */
export function createAgentRunner(definition: AgentDefinition, model?: LanguageModelV2): AgentRunner {
  const { runtime } = definition;
  let agent: MastraAgentLike;
  if (runtime.kind === "mastra") agent = runtime.agent;
  else {
    const chosen = runtime.model ?? model;
    if (!chosen) throw new Error(`Agent "${definition.id}" has no model of its own and none was configured.`);
    agent = new Agent({ id: definition.id, name: definition.id, description: definition.description, instructions: "", model: chosen, tools: runtime.tools as never });
  }
  const fallbackModel = runtime.kind === "model" ? modelName(runtime.model ?? model) : "unknown";

  return async (input, prompt, signal) => {
    const started = performance.now();
    const failed = (error: string, toolCalls: ToolCall[] = [], name = fallbackModel): AgentRun => ({
      status: "failed",
      output: null,
      error,
      latencyMs: performance.now() - started,
      inputTokens: null,
      outputTokens: null,
      model: name,
      toolCalls,
    });
    try {
      const result = (await agent.generate(definition.message(input), {
        instructions: renderPrompt(prompt),
        maxSteps: runtime.maxSteps,
        ...(definition.outputSchema ? { structuredOutput: { schema: definition.outputSchema } } : {}),
        ...(signal ? { abortSignal: signal } : {}),
      })) as GenerateResult;
      // Mastra ends an aborted run without throwing; a cancelled run is not the agent's failure and must not be recorded as one.
      signal?.throwIfAborted();
      const toolCalls = toolCallsOf(result);
      const name = result.response?.modelMetadata ? `${result.response.modelMetadata.modelProvider}/${result.response.modelMetadata.modelId}` : fallbackModel;
      if (result.error) return failed(errorText(result.error), toolCalls, name);
      let output: Record<string, unknown>;
      if (definition.outputSchema) {
        const parsed = definition.outputSchema.safeParse(result.object);
        if (!parsed.success) return failed(`output does not match the agent's schema: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`, toolCalls, name);
        output = parsed.data as Record<string, unknown>;
      } else {
        if (typeof result.text !== "string" || result.text.trim() === "") return failed("the agent answered with no text", toolCalls, name);
        output = { text: result.text };
      }
      return {
        status: "succeeded",
        output,
        error: null,
        latencyMs: performance.now() - started,
        inputTokens: result.usage?.inputTokens ?? null,
        outputTokens: result.usage?.outputTokens ?? null,
        model: name,
        toolCalls,
      };
    } catch (error) {
      if (signal?.aborted) throw error;
      return failed(errorText(error));
    }
  };
}

/** Tool calls paired with their results by call id, in the order the agent made them. */
function toolCallsOf(result: GenerateResult): ToolCall[] {
  const results = new Map((result.toolResults ?? []).map((entry) => [entry.payload?.toolCallId, entry.payload?.result]));
  return (result.toolCalls ?? []).map((call) => ({
    name: String(call.payload?.toolName ?? "unknown"),
    args: call.payload?.args ?? null,
    result: results.get(call.payload?.toolCallId) ?? null,
  }));
}

function modelName(model: LanguageModelV2 | undefined | null): string {
  return model ? `${model.provider}/${model.modelId}` : "unknown";
}

/** Mastra's structured-output errors keep the model's raw answer aside; quoting it shows what went wrong. */
function errorText(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const answer = (error as { details?: { value?: unknown } } | null)?.details?.value;
  return typeof answer === "string" ? `${message} (the model answered ${JSON.stringify(answer.slice(0, 200))})` : message;
}

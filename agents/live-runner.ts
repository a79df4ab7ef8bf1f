import type { LanguageModelV2 } from "@ai-sdk/provider";
import type { Freshness, PromptClient, PromptSelector } from "../client/prompt-client.ts";
import { type AgentRun, createAgentRunner } from "./runner.ts";
import type { AgentDefinition } from "./types.ts";

export interface LiveAgentRun extends AgentRun {
  /** The prompt version this run actually used: store it with the rollout. */
  prompt: { resource: string; version: number; freshness: Freshness };
}

export type LiveAgentRunner = (input: Record<string, unknown>, signal?: AbortSignal) => Promise<LiveAgentRun>;

/**
 * An agent serving live traffic: every run asks the resource client for the agent's prompt (by
 * default the version labelled `production`) and hands it to Mastra's per-request instructions, so
 * a deploy or a rollback reaches the running agent within the client's time limit, without a
 * restart. `model` is for an agent defined without a model of its own. Throws PromptUnavailableError only when the client has never had any copy of the prompt.
 */
export function createLiveAgentRunner(
  definition: AgentDefinition,
  client: Pick<PromptClient, "get">,
  options: { model?: LanguageModelV2; selector?: PromptSelector } = {},
): LiveAgentRunner {
  const run = createAgentRunner(definition, options.model);
  const selector = options.selector ?? {};
  return async (input, signal) => {
    const served = await client.get(definition.prompt.resource, selector);
    const result = await run(input, served.resource.content, signal);
    return { ...result, prompt: { resource: served.resource.name, version: served.version, freshness: served.freshness } };
  };
}

import type { LanguageModelV2 } from "@ai-sdk/provider";
import type { Arm } from "../client/canary-assignment.ts";
import type { Freshness, PromptClient, PromptSelector } from "../client/prompt-client.ts";
import { type AgentRun, createAgentRunner } from "./runner.ts";
import type { AgentDefinition } from "./types.ts";

export interface LiveAgentRun extends AgentRun {
  /** The prompt version this run actually used, and the arm of the split that served it: store both with the rollout. */
  prompt: { resource: string; version: number; freshness: Freshness; arm: Arm | null };
}

export interface LiveRunOptions {
  /** The user or session id the traffic split keys on: while a canary runs, a fixed share of keys runs it. */
  key?: string;
  signal?: AbortSignal;
}

export type LiveAgentRunner = (input: Record<string, unknown>, options?: LiveRunOptions) => Promise<LiveAgentRun>;

/**
 * An agent serving live traffic: every run asks the resource client for the agent's prompt (by
 * default the version labelled `production`, or for a key the arm the canary split assigns it) and
 * hands it to Mastra's per-request instructions, so a deploy, a canary or a rollback reaches the running
 * agent without a restart. `model` is for an agent defined without a model of its own. Throws
 * PromptUnavailableError only when the client has never had any copy of the prompt.
 */
export function createLiveAgentRunner(
  definition: AgentDefinition,
  client: Pick<PromptClient, "get">,
  options: { model?: LanguageModelV2; selector?: Omit<PromptSelector, "key"> } = {},
): LiveAgentRunner {
  const run = createAgentRunner(definition, options.model);
  const selector = options.selector ?? {};
  return async (input, runOptions = {}) => {
    const served = await client.get(definition.prompt.resource, runOptions.key === undefined ? selector : { ...selector, key: runOptions.key });
    const result = await run(input, served.resource.content, runOptions.signal);
    return { ...result, prompt: { resource: served.resource.name, version: served.version, freshness: served.freshness, arm: served.arm } };
  };
}

import type { LanguageModelV2 } from "@ai-sdk/provider";
import type { z } from "zod";
import type { RewardScorer } from "../scorers/types.ts";
import type { PromptContent } from "../store/schema.ts";

/**
 * The part of a Mastra `Agent` the loop uses: `generate` with per-request instructions. Typed
 * structurally, so an agent built with the user's own copy of `@mastra/core` is accepted as it is.
 */
export interface MastraAgentLike {
  readonly id?: string;
  readonly name?: string;
  generate(message: string, options: Record<string, unknown>): Promise<unknown>;
}

/** How an agent answers: an object checked against a zod schema, or free text. */
export type OutputKind = "object" | "text";

/** A scorer of the agent with the weight its reward has in the rollout's reward. */
export interface WeightedScorer {
  id: string;
  weight: number;
  /** Computed by the loop over a stored rollout; posted scorers (human, proxy) arrive over the API. */
  scorer: RewardScorer | { posted: "human" | "proxy"; event?: string };
}

/**
 * Everything the loop knows about one agent, normalised and checked by `defineAgent`: how to validate
 * its input, what it answers, how an input becomes the user message, the prompt resource its
 * instructions come from, its scorers and its bundled data sets.
 */
export interface AgentDefinition {
  readonly id: string;
  readonly description: string;
  readonly inputSchema: z.ZodObject;
  readonly outputKind: OutputKind;
  /** The structured output's schema; null for free-text agents. */
  readonly outputSchema: z.ZodObject | null;
  /** The output as JSON Schema (what the model is asked to follow and the optimizer is told); null for text. */
  readonly outputJsonSchema: Record<string, unknown> | null;
  /** Ground truth in a data set: (some of) the output's fields; for text agents `{text}` unless the agent says otherwise. */
  readonly expectedSchema: z.ZodObject;
  /** Output fields with a closed set of labels (string enums of the output schema), in schema order. */
  readonly labels: Record<string, readonly string[]>;
  /** The user message the agent is sent for an input. */
  message(input: Record<string, unknown>): string;
  readonly prompt: {
    readonly resource: string;
    /** Version 1 of the resource, published the first time the agent is used. */
    readonly seed: PromptContent;
    /** The components an optimizer may change; the others stay as they are in every candidate. */
    readonly editable: readonly string[];
    /** Placeholders `instructions` must keep, so an edit cannot drop a section the agent relies on. */
    readonly requiredPlaceholders: readonly string[];
    /** Label field -> the component holding one `- label: description` line per label. */
    readonly labelComponents: Readonly<Record<string, string>>;
    /** Where few-shot demonstrations go; null when the agent takes none. */
    readonly examplesComponent: string | null;
  };
  readonly scorers: readonly WeightedScorer[];
  /** Data sets shipped with the agent, imported on first use under these names: name -> JSONL file. */
  readonly datasets: Readonly<Record<string, string>>;
  /** What runs it: the user's own Mastra agent, or a model (the configured one when unset) with optional tools. */
  readonly runtime:
    | { kind: "mastra"; agent: MastraAgentLike; maxSteps: number }
    | { kind: "model"; model: LanguageModelV2 | null; tools: Record<string, unknown>; maxSteps: number };
}

import type { z } from "zod";
import type { PromptContent } from "../store/schema.ts";

/**
 * Everything the loop needs to know about one agent: how to validate its input, the shape of its
 * structured output, how to turn an input into the user message, and the prompt resource its
 * instructions come from.
 */
export interface AgentDefinition {
  id: string;
  description: string;
  inputSchema: z.ZodType<Record<string, unknown>>;
  outputSchema: z.ZodObject;
  /** Output fields with a closed set of labels; the optimizer edits their descriptions. */
  labels: Record<string, readonly string[]>;
  prompt: {
    resource: string;
    /** Version 1 of the resource, published the first time the agent is used. */
    seed: PromptContent;
    /** Placeholders `instructions` must keep, so an edit cannot drop a section the agent relies on. */
    requiredPlaceholders: readonly string[];
    /** Output field -> component holding one `- label: description` line per label. */
    labelComponents: Record<string, string>;
    examplesComponent: string;
  };
  /** The input field the optimizer quotes in few-shot examples. */
  inputTextField: string;
  userMessage(input: Record<string, unknown>): string;
  /** Data sets shipped with the agent, imported on first use under these names. */
  bundledDatasets: Record<string, string>;
}

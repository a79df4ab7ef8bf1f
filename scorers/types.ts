import type { LanguageModelV2 } from "@ai-sdk/provider";
import type { ToolCallRecord } from "../store/schema.ts";

export type ToolCall = ToolCallRecord;

export interface ScorerInput {
  input: Record<string, unknown>;
  /** The agent's answer: its structured object, or `{text}` for a free-text agent; null when the run failed. */
  output: Record<string, unknown> | null;
  error: string | null;
  /** Ground truth, possibly partial; null when the task has none. */
  expected: Record<string, unknown> | null;
  /** The tools the agent called on the way, in order. */
  toolCalls?: readonly ToolCall[];
}

export interface ScoredReward {
  /** In [-1, 1]. */
  value: number;
  /** Why, in words a person reading the rollout understands. */
  reason: string;
  details: Record<string, unknown>;
}

/** What a scorer may need from the process scoring it: the judge's model is configured, not coded. */
export interface ScoringContext {
  judgeModel(): LanguageModelV2;
}

export interface RewardScorer {
  id: string;
  description: string;
  /** Undefined when this scorer cannot judge the rollout (e.g. no ground truth): no reward is stored. */
  score(input: ScorerInput, context: ScoringContext): Promise<ScoredReward | undefined>;
}

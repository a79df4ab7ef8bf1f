export interface ScorerInput {
  input: Record<string, unknown>;
  /** Null when the agent run failed. */
  output: Record<string, unknown> | null;
  error: string | null;
  /** Ground truth, possibly partial; null when the task has none. */
  expected: Record<string, unknown> | null;
}

export interface ScoredReward {
  /** In [-1, 1]. */
  value: number;
  /** Why, in words a person reading the rollout understands. */
  reason: string;
  details: Record<string, unknown>;
}

export interface RewardScorer {
  id: string;
  description: string;
  /** Undefined when this scorer cannot judge the rollout (e.g. no ground truth): no reward is stored. */
  score(input: ScorerInput): Promise<ScoredReward | undefined>;
}

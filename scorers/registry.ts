import { NotFoundError } from "../store/errors.ts";
import { groundTruthScorer } from "./ground-truth.ts";
import type { RewardScorer } from "./types.ts";

const scorers = new Map<string, RewardScorer>([[groundTruthScorer.id, groundTruthScorer]]);

export function getScorer(id: string): RewardScorer {
  const scorer = scorers.get(id);
  if (!scorer) throw new NotFoundError(`Unknown scorer "${id}". Known scorers: ${[...scorers.keys()].join(", ")}.`);
  return scorer;
}

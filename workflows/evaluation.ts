import { defineQuery, setHandler, workflowInfo } from "@temporalio/workflow";
import type { PromptRef } from "../activities/cycle-activities.ts";
import type { ConfusionMatrix } from "../store/analysis.ts";
import { cycleActivities } from "./cycle-activities-proxies.ts";
import { runPhaseBatches } from "./batch-plan.ts";
import type { CycleSettings, MeanInterval, PhaseProgress } from "./types.ts";

/** One prompt an evaluation runs: a published version or a cycle's candidate, under the name the report uses. */
export interface EvaluationContender {
  /** `v3`, or the candidate id (`r1c2`): how its rollouts are told apart. */
  contender: string;
  /** What the user asked for, e.g. `production (v2)` or `cy-…/r1c2`. */
  description: string;
  prompt: PromptRef;
}

export interface EvaluationInput {
  agent: string;
  dataset: string;
  split: "train" | "validation" | "test";
  taskIds: string[];
  /** The prompt under test first; a second one is what it is compared with, on the same tasks. */
  contenders: EvaluationContender[];
  repeats: number;
  settings: Pick<CycleSettings, "batchSize" | "concurrency" | "parallelBatches" | "batchTimeoutMinutes" | "heartbeatTimeoutSeconds" | "optimizer">;
}

export interface ContenderEvaluation {
  contender: string;
  description: string;
  rollouts: number;
  failed: number;
  /** Over tasks (each task's reward averaged over its repeats), with a 95 % interval; null when nothing was rewarded. */
  reward: MeanInterval | null;
  rewardByScorer: Record<string, MeanInterval>;
  fieldAccuracy: Record<string, { right: number; total: number; accuracy: number }>;
  confusion: Record<string, ConfusionMatrix>;
}

export interface EvaluationResult {
  evaluationId: string;
  agent: string;
  dataset: string;
  split: string;
  tasks: number;
  repeats: number;
  contenders: ContenderEvaluation[];
  /** The first contender minus the second, paired over the tasks both were rewarded on, with a 95 % interval. */
  difference: (MeanInterval & { of: string; against: string }) | null;
}

export const evaluationProgressQuery = defineQuery<PhaseProgress>("evaluation-progress");

/**
 * `agl test`: runs prompts on a split through the same durable agent batches as a cycle (any worker
 * takes them; a retried batch skips what is stored), scores them, and reports each with its interval
 * and, for two, their paired difference. It decides nothing and deploys nothing.
 */
export async function evaluatePrompts(input: EvaluationInput): Promise<EvaluationResult> {
  const evaluationId = workflowInfo().workflowId;
  const { agentBatches, scoring, bookkeeping } = cycleActivities(input.settings);
  const progress: PhaseProgress = { done: 0, total: input.taskIds.length * input.contenders.length * input.repeats };
  setHandler(evaluationProgressQuery, () => progress);
  const jobs = input.contenders.flatMap((contender) => Array.from({ length: input.repeats }, (_, index) => ({ prompt: contender.prompt, taskIds: input.taskIds, repeat: index + 1 })));
  const phase = { cycleId: evaluationId, agent: input.agent, dataset: input.dataset, phase: "test" as const };
  const unscored = await runPhaseBatches(agentBatches, phase, jobs, input.settings, (runs) => (progress.done += runs));
  // The batches scored their runs; what one could not (a judge that failed, a retried batch) is scored here.
  if (unscored > 0) await scoring.scoreRollouts({ cycleId: evaluationId, dataset: input.dataset, phase: "test" });
  const summary = await bookkeeping.summarizeEvaluation({ evaluationId, agent: input.agent, contenders: input.contenders.map(({ contender, description }) => ({ contender, description })) });
  return { evaluationId, agent: input.agent, dataset: input.dataset, split: input.split, tasks: input.taskIds.length, repeats: input.repeats, ...summary };
}

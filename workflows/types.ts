/** Types shared by the workflows, the activities and the clients that start or query cycles. No runtime code. */
import type { GuardSettings } from "../store/canaries.ts";

export interface CycleSettings {
  /** Tasks per agent-batch activity. */
  batchSize: number;
  /** Agent runs in flight inside one batch activity. */
  concurrency: number;
  /** Batch activities in flight at once for the cycle. */
  parallelBatches: number;
  /** A candidate is deployed only when the lower bound on its paired gain over the incumbent exceeds this. */
  margin: number;
  /** The one-sided confidence of that lower bound, before the correction for several finalists. */
  confidence: number;
  /** Runs of each contender on each validation task. */
  validationRepeats: number;
  optimizer: {
    algorithm: string;
    /** Children per beam member and round. */
    candidates: number;
    rounds: number;
    beamWidth: number;
    /** Share of the train tasks held out of the optimizer's input to score the search. */
    devFraction: number;
    minibatchSize: number;
    /** GEPA: agent runs the search may spend. */
    budget: number;
    seed: number;
    maxExamples: number;
    maxKeywords: number;
    timeoutMinutes: number;
  };
  /** A batch activity that has not heartbeaten for this long is retried elsewhere (its worker is presumed dead). */
  heartbeatTimeoutSeconds: number;
  batchTimeoutMinutes: number;
  /** Where the winner goes: `production` at once, or the `canary` label at `canaryWeight` percent under a guard. Unset (schedules made before canaries existed): production. */
  deploy?: "production" | "canary";
  canaryWeight?: number;
  guard?: GuardSettings;
}

export interface CycleInput {
  agent: string;
  /** Train on this data set's train split and judge on its validation split... */
  dataset?: string;
  /**
   * ...or on live traffic: the rollouts that arrived in the window ending at the run's scheduled time
   * (its start time when not scheduled). Fewer than `minScored` scored rollouts ends the run "skipped".
   */
  traffic?: { windowMs: number; minScored: number };
  /** "manual", or "schedule:<id>" for runs started by a Temporal Schedule. */
  trigger: string;
  settings: CycleSettings;
}

export type CyclePhase = "starting" | "collect" | "evaluate" | "train" | "search" | "validate" | "test" | "deploy" | "done";

export interface PhaseProgress {
  done: number;
  total: number;
}

export interface CycleProgress {
  cycleId: string;
  agent: string;
  phase: CyclePhase;
  /** Tasks finished and planned in the current phase (agent runs for collect and validate). */
  progress: PhaseProgress;
  incumbentVersion?: number;
  /** The search round under way. */
  round?: number;
  /** The current beam: the best prompts so far, by dev score. */
  beam?: string[];
}

export interface ContenderScore {
  /** "incumbent" or a candidate id. */
  contender: string;
  rollouts: number;
  failed: number;
  meanReward: number;
  /** Fraction of expected fields answered right, per field. */
  fieldAccuracy: Record<string, number>;
  /** The error of the first of its runs that failed, if any did. */
  firstError?: string;
}

export interface CycleResult {
  cycleId: string;
  agent: string;
  outcome: "deployed" | "kept" | "skipped";
  detail: string;
  incumbentVersion: number | null;
  deployedVersion: number | null;
  baseline?: ContenderScore;
  best?: ContenderScore;
  collect?: { rollouts: number; failed: number; meanReward: number };
  /** Each search round's candidates and dev scores, and the beam members sent to validation. */
  search?: { rounds: SearchRound[]; finalists: string[] };
  /** How the gate decided, with its numbers. */
  gate?: GateDecision;
  /** The deployed version and the incumbent on the test split after the decision: the number to believe. */
  test?: TestEvaluation;
  /** Deployed as a canary: its id (also its guard's workflow id) and traffic share. */
  canary?: { id: string; weight: number };
}

/** A mean over tasks with its two-sided 95 % interval (null bounds below two tasks). */
export interface MeanInterval {
  n: number;
  mean: number;
  low: number | null;
  high: number | null;
}

/** One finalist against the incumbent on the same validation tasks. */
export interface GateComparison {
  contender: string;
  /** Tasks both were scored on; each task's reward is the mean over its repeats. */
  tasks: number;
  /** Mean over tasks of (candidate - incumbent). */
  meanDifference: number;
  /** The one-sided lower bound on that mean at `GateDecision.correctedConfidence`; null below two tasks. */
  lowerBound: number | null;
}

export interface GateDecision {
  method: string;
  confidence: number;
  /** The confidence each comparison is held to: Bonferroni over the finalists, so picking the best of several does not inflate it. */
  correctedConfidence: number;
  margin: number;
  repeats: number;
  comparisons: GateComparison[];
  /** The finalist with the highest lower bound; null when there is none. */
  chosen: string | null;
  deploy: boolean;
}

export interface TestEvaluation {
  tasks: number;
  incumbent: MeanInterval;
  deployed: MeanInterval;
  /** Paired over the test tasks: deployed minus incumbent. */
  difference: MeanInterval;
}

export interface SearchRound {
  round: number;
  /** The incumbent's and every candidate's mean reward on the dev tasks. */
  scores: ContenderScore[];
  beam: string[];
  /** GEPA: what the iteration did (one iteration is one round). */
  gepa?: GepaIteration;
}

/** One iteration of a GEPA search: a reflection on one component of a parent, or a merge of two pool members. */
export interface GepaIteration {
  step: "reflect" | "merge";
  /** The Pareto front over the dev tasks the parent was drawn from: member -> dev tasks it is best on (after GEPA drops dominated members). */
  front: Record<string, number>;
  parents: string[];
  /** reflect: the component rewritten (round-robin over the parent's reflectable components). */
  component?: string;
  /** merge: the parents' common ancestor. */
  ancestor?: string;
  child: string | null;
  /** Tasks the child was compared with its parent on (reflect: train tasks outside the dev set; merge: dev tasks), with the summed rewards (merge: the better parent's sum). */
  minibatch: { taskIds: string[]; parent: number; child: number | null };
  /** The child beat its parent on the minibatch (merge: matched the better parent), was run on every dev task and joined the pool. */
  accepted: boolean;
  /** Why there was no child or no comparison. */
  note?: string;
  llmCalls: number;
  /** Agent runs of this iteration, of the search so far, and the budget. */
  agentRuns: number;
  spent: number;
  budget: number;
}

/** The contender name of the production prompt a cycle starts from, in rollouts, scores and the optimizer contract. */
export const INCUMBENT = "incumbent";

/** Query name for a running cycle's progress; `agl cycle status` and the CLI's progress bar use it. */
export const PROGRESS_QUERY = "progress";

export interface CanaryGuardInput {
  canaryId: string;
  settings: GuardSettings;
  /** Carried over a continue-as-new: when the guard began (ms since the epoch), its looks so far, and the canary-arm count of its next look. */
  startedAtMs?: number;
  looks?: number;
  nextLookAt?: number;
}

export interface CanaryGuardResult {
  canaryId: string;
  outcome: "promoted" | "rolled_back";
  /** `guard:<id>` when the guard decided, else whoever stepped in. */
  decidedBy: string;
  reason: string;
  looks: number;
}

export interface CanaryGuardState {
  canaryId: string;
  phase: "watching" | "deciding" | "done";
  looks: number;
  /** The canary-arm rollouts the next look waits for. */
  nextLookAt: number;
  lastReason: string | null;
}

/** Query name for a running guard's state (`agl canary status`). */
export const GUARD_STATE_QUERY = "guardState";

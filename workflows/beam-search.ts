import type { PromptRef } from "../activities/cycle-activities.ts";
import type { RolloutPhase } from "../store/schema.ts";
import type { CycleActivities } from "./cycle-activities-proxies.ts";
import type { ContenderScore, CycleProgress, CycleSettings, SearchRound } from "./types.ts";
import { INCUMBENT } from "./types.ts";

/**
 * What a search needs from the cycle running it: where it is, the activities at the call sites'
 * timeouts, and the cycle's ways to run and score prompts. Every search keeps its state in workflow
 * variables, so a crash resumes at the last finished step.
 */
export interface SearchContext {
  cycleId: string;
  agent: string;
  dataset: string;
  collected: "cycle" | "traffic";
  incumbentVersion: number;
  settings: CycleSettings;
  /** Train tasks held out of the optimizer's input: candidates are scored on them. */
  devTaskIds: string[];
  /** The incumbent's score on the dev tasks. */
  incumbentOnDev: ContenderScore;
  activities: CycleActivities;
  progress: CycleProgress;
  /** Sets the phase shown by `agl cycle status` and the total it counts to. */
  enter(phase: CycleProgress["phase"], total: number): Promise<void>;
  /** Runs each job's prompt on its tasks in agent batches and scores the rollouts (idempotent: stored rollouts are skipped). */
  runBatches(jobs: { prompt: PromptRef; taskIds: string[] }[], phase: RolloutPhase): Promise<void>;
}

/** The search's record: every round's scores, and the candidates that go on to the validation gate. */
export interface SearchOutcome {
  rounds: SearchRound[];
  finalists: string[];
}

/**
 * Beam search (llm-free, few-shot, apo): each round the optimizer proposes children of the beam, they
 * run on the dev tasks, and the best `beamWidth` prompts (the incumbent included) form the next beam.
 */
export async function beamSearch(context: SearchContext): Promise<SearchOutcome> {
  const { activities, settings, incumbentOnDev } = context;
  let beam: ContenderScore[] = [incumbentOnDev];
  const rounds: SearchRound[] = [];
  for (let round = 1; round <= settings.optimizer.rounds; round++) {
    context.progress.round = round;
    await context.enter("train", 1);
    const proposal = await activities.optimizer.proposeCandidates({
      cycleId: context.cycleId,
      agent: context.agent,
      dataset: context.dataset,
      collected: context.collected,
      incumbentVersion: context.incumbentVersion,
      round,
      parents: beam.map((member) => member.contender),
      optimizer: settings.optimizer,
    });
    if (proposal.candidates.length === 0) break;
    const children = proposal.candidates.map((candidate) => candidate.id);
    await context.enter("search", context.devTaskIds.length * children.length);
    await context.runBatches(
      children.map((id) => ({ prompt: { candidateId: id }, taskIds: context.devTaskIds })),
      "search",
    );
    const childScores = await activities.bookkeeping.summarizeContenders({ cycleId: context.cycleId, agent: context.agent, phase: "search", contenders: children });
    beam = bestFirst([...beam, ...childScores]).slice(0, settings.optimizer.beamWidth);
    context.progress.beam = beam.map((member) => member.contender);
    rounds.push({ round, scores: [incumbentOnDev, ...childScores], beam: context.progress.beam });
  }
  return { rounds, finalists: beam.filter((member) => member.contender !== INCUMBENT).map((member) => member.contender) };
}

/** Highest mean reward first; ties keep their order, so the incumbent and earlier candidates win them. */
export function bestFirst(scores: ContenderScore[]): ContenderScore[] {
  return [...scores].sort((a, b) => b.meanReward - a.meanReward);
}

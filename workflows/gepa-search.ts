import type { Fingerprint } from "../activities/gepa-activities.ts";
import type { PromptRef } from "../activities/cycle-activities.ts";
import type { RolloutPhase } from "../store/schema.ts";
import { bestFirst, type SearchContext, type SearchOutcome } from "./beam-search.ts";
import { findMerge, mergeKey, mergeMinibatch, minibatches, paretoFront, type PoolMember, seededRandom, selectParent } from "./gepa-pool.ts";
import type { ContenderScore, GepaIteration, SearchRound } from "./types.ts";
import { INCUMBENT } from "./types.ts";

/** GEPA's default number of merges per search (max_merge_invocations). */
const MAX_MERGES = 5;
/** Bounds the workflow's history whatever the budget. */
const MAX_ITERATIONS = 100;
/**
 * Iterations in a row that ran no agent (reflections rejected on minibatches the cycle had measured) before
 * the search gives up: each reflectable component tried twice, four times at least.
 */
const idleLimit = (components: number) => Math.max(4, 2 * components);

/** An iteration's record before its budget figures are added. */
type Step = Omit<GepaIteration, "agentRuns" | "spent" | "budget">;

interface Member extends PoolMember {
  score: ContenderScore;
  /** Where the round-robin over the reflectable components stands for this member. */
  nextComponent: number;
}

/**
 * GEPA (reflective prompt evolution, Agrawal et al. 2025) as a search of the cycle: each iteration draws
 * a parent from the Pareto front of the pool's per-task dev rewards, has the reflection model rewrite
 * one of its components (round-robin) from its runs on a minibatch of train tasks outside the dev set,
 * and runs the child on that minibatch; only a child that beats its parent there runs on the dev tasks
 * and joins the pool. After a child joins, the next iteration tries GEPA's merge of two front members
 * that improved different components, judged first on a few dev tasks. It stops when the budget (agent
 * runs) cannot pay for another iteration.
 *
 * The pool, the scores, ancestry, minibatches and the budget live in this function's variables and every
 * draw comes from a PRNG seeded by `optimizer.seed`, so a replay after a crash takes the same decisions
 * and resumes at the last finished step; the activities it calls are idempotent.
 */
export async function gepaSearch(context: SearchContext): Promise<SearchOutcome> {
  const { activities, settings, cycleId, agent, devTaskIds } = context;
  const { budget, minibatchSize, beamWidth } = settings.optimizer;
  const random = seededRandom(settings.optimizer.seed);
  const setup = await activities.bookkeeping.prepareGepaSearch({ agent, dataset: context.dataset, incumbentVersion: context.incumbentVersion, devFraction: settings.optimizer.devFraction });
  const incumbentPrompt: PromptRef = { version: context.incumbentVersion };
  const promptOf = (id: string): PromptRef => (id === INCUMBENT ? incumbentPrompt : { candidateId: id });
  // A cycle ran the incumbent on every train task when it collected; a traffic cycle on the dev tasks, in the search phase.
  const collectedFit = context.collected === "cycle";
  const fitPhase = (id: string): RolloutPhase => (id === INCUMBENT && collectedFit ? "collect" : "search");
  const rewardsOf = (id: string, phase: RolloutPhase, taskIds: string[]) => activities.bookkeeping.contenderRewards({ cycleId, agent, phase, prompt: promptOf(id), taskIds });

  const incumbentDev = await rewardsOf(INCUMBENT, collectedFit ? "collect" : "search", devTaskIds);
  const pool: Member[] = [{ id: INCUMBENT, parents: [], fingerprint: setup.fingerprint, dev: incumbentDev.rewards, meanReward: context.incumbentOnDev.meanReward, score: context.incumbentOnDev, nextComponent: 0 }];
  const fitRewards = new Map<string, Record<string, number>>();
  const nextMinibatch = minibatches(setup.fitTaskIds, minibatchSize, random);
  const triedMerges = new Set<string>();
  const rounds: SearchRound[] = [];
  let spent = 0;
  /** GEPA tries a merge right after a reflection's child joined the pool, MAX_MERGES times at most. */
  let mergeNext = false;
  let merges = 0;
  let idle = 0;

  /** Runs a prompt on tasks in the search phase and scores the runs: every run counts against the budget. */
  const runOn = async (id: string, taskIds: string[]) => {
    if (taskIds.length === 0) return;
    await context.runBatches([{ prompt: promptOf(id), taskIds }], "search");
    spent += taskIds.length;
  };
  /** The tasks of `taskIds` a member has no minibatch reward for yet and would have to run (the incumbent's were collected). */
  const unmeasured = (id: string, taskIds: string[]) => {
    const known = fitRewards.get(id) ?? {};
    return taskIds.filter((taskId) => !(taskId in known));
  };
  const runsToMeasure = (id: string, taskIds: string[]) => (fitPhase(id) === "collect" ? 0 : unmeasured(id, taskIds).length);
  const fitRewardsOf = async (id: string, taskIds: string[]) => {
    const missing = unmeasured(id, taskIds);
    if (missing.length > 0) {
      if (runsToMeasure(id, missing) > 0) await runOn(id, missing);
      fitRewards.set(id, { ...fitRewards.get(id), ...(await rewardsOf(id, fitPhase(id), missing)).rewards });
    }
    const known = fitRewards.get(id)!;
    return taskIds.map((taskId) => known[taskId]!);
  };
  /** Runs an accepted child on the dev tasks it has not run yet and adds it to the pool. */
  const admit = async (id: string, parents: string[], fingerprint: Fingerprint, alreadyOnDev: string[]) => {
    await runOn(id, devTaskIds.filter((taskId) => !alreadyOnDev.includes(taskId)));
    const { score, rewards } = await rewardsOf(id, "search", devTaskIds);
    const nextComponent = Math.max(...parents.map((parent) => member(parent).nextComponent));
    pool.push({ id, parents, fingerprint, dev: rewards, meanReward: score.meanReward, score, nextComponent });
    return score;
  };
  const member = (id: string) => pool.find((candidate) => candidate.id === id)!;

  // Nothing to judge children on, to learn from, or to rewrite.
  if (devTaskIds.length === 0 || setup.fitTaskIds.length === 0 || setup.components.length === 0) return { rounds, finalists: [] };
  await context.enter("search", budget);
  for (let iteration = 1; iteration <= MAX_ITERATIONS && idle < idleLimit(setup.components.length); iteration++) {
    context.progress.round = iteration;
    const spentBefore = spent;
    const front = paretoFront(pool, devTaskIds);
    let record: Step;
    let childScore: ContenderScore | undefined;

    const merge = mergeNext ? findMerge(pool, [...front.keys()], triedMerges, random) : undefined;
    mergeNext = false;
    if (merge && spent + devTaskIds.length <= budget) {
      // GEPA's merge: the combination must do at least as well as the better parent on a few dev tasks first.
      triedMerges.add(mergeKey(...merge.parents, merge.ancestor));
      const [first, second] = merge.parents.map(member) as [Member, Member];
      const proposal = await activities.optimizer.mergeCandidates({ cycleId, agent, incumbentVersion: context.incumbentVersion, iteration, parents: merge.parents, ancestor: merge.ancestor, optimizer: settings.optimizer });
      const taskIds = mergeMinibatch(first.dev, second.dev, devTaskIds, minibatchSize, random);
      const parentSum = Math.max(sum(taskIds.map((taskId) => first.dev[taskId]!)), sum(taskIds.map((taskId) => second.dev[taskId]!)));
      let childSum: number | null = null;
      if (proposal.child) {
        merges++;
        await runOn(proposal.child, taskIds);
        childSum = sum(Object.values((await rewardsOf(proposal.child, "search", taskIds)).rewards));
      }
      const accepted = childSum !== null && childSum >= parentSum;
      if (accepted) childScore = await admit(proposal.child!, merge.parents, proposal.fingerprint!, taskIds);
      record = {
        step: "merge",
        front: Object.fromEntries(front),
        parents: merge.parents,
        ancestor: merge.ancestor,
        child: proposal.child,
        minibatch: { taskIds, parent: parentSum, child: childSum },
        accepted,
        ...(proposal.note ? { note: proposal.note } : {}),
        llmCalls: proposal.llmCalls,
      };
    } else {
      const parent = member(selectParent(front, random));
      const taskIds = nextMinibatch();
      // Only an iteration the budget can pay for in full starts: the parent's missing runs, the child's minibatch, its dev evaluation.
      if (spent + runsToMeasure(parent.id, taskIds) + taskIds.length + devTaskIds.length > budget) break;
      const component = setup.components[parent.nextComponent % setup.components.length]!;
      parent.nextComponent++;
      const parentRewards = await fitRewardsOf(parent.id, taskIds);
      const parentSum = sum(parentRewards);
      const step = { step: "reflect" as const, front: Object.fromEntries(front), parents: [parent.id], component };
      if (parentRewards.every((reward) => reward >= 1)) {
        // GEPA skips a parent that is already perfect on the minibatch: there is nothing to learn from.
        record = { ...step, child: null, minibatch: { taskIds, parent: parentSum, child: null }, accepted: false, note: "perfect on the minibatch: nothing to reflect on", llmCalls: 0 };
      } else {
        const proposal = await activities.optimizer.reflectCandidate({
          cycleId,
          agent,
          incumbentVersion: context.incumbentVersion,
          iteration,
          parent: parent.id,
          component,
          runs: { phase: fitPhase(parent.id), prompt: promptOf(parent.id), taskIds },
          optimizer: settings.optimizer,
        });
        let childSum: number | null = null;
        if (proposal.child) {
          await runOn(proposal.child, taskIds);
          childSum = sum(Object.values((await rewardsOf(proposal.child, "search", taskIds)).rewards));
        }
        // GEPA's acceptance: strictly better than the parent on the same minibatch.
        const accepted = childSum !== null && childSum > parentSum;
        if (accepted) {
          childScore = await admit(proposal.child!, [parent.id], proposal.fingerprint!, []);
          mergeNext = merges < MAX_MERGES;
        }
        record = { ...step, child: proposal.child, minibatch: { taskIds, parent: parentSum, child: childSum }, accepted, ...(proposal.note ? { note: proposal.note } : {}), llmCalls: proposal.llmCalls };
      }
    }
    idle = spent === spentBefore ? idle + 1 : 0;
    const beam = bestFirst(pool.map((candidate) => candidate.score))
      .slice(0, beamWidth)
      .map((score) => score.contender);
    context.progress.beam = beam;
    rounds.push({ round: iteration, scores: [context.incumbentOnDev, ...(childScore ? [childScore] : [])], beam, gepa: { ...record, agentRuns: spent - spentBefore, spent, budget } });
  }
  const finalists = bestFirst(pool.map((candidate) => candidate.score))
    .slice(0, beamWidth)
    .map((score) => score.contender)
    .filter((id) => id !== INCUMBENT);
  return { rounds, finalists };
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

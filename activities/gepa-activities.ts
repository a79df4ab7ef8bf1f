import { createHash } from "node:crypto";
import { validatePromptContent } from "../agents/prompt-validation.ts";
import type { AgentDefinition } from "../agents/types.ts";
import { rolloutReward } from "../scorers/registry.ts";
import { InvalidInputError } from "../store/errors.ts";
import type { PromptContent, RolloutPhase } from "../store/schema.ts";
import { type ContenderScore, type CycleSettings, INCUMBENT } from "../workflows/types.ts";
import {
  type ActivityDependencies,
  callOptimizer,
  contenderKey,
  contractRolloutsFor,
  earlierCandidates,
  isDevTask,
  nonRetryable,
  type PromptRef,
  rolloutId,
  scoringPlans,
  storedCandidate,
  summarize,
} from "./cycle-activities.ts";
import { agentSpecFor, componentsKey, OPTIMIZER_CONTRACT_VERSION, type OptimizerRequest, optimizerParams } from "./optimizer-contract.ts";
import { expectedOf } from "./rewarding.ts";

/**
 * Component name -> a short hash of its text. The workflow compares pool members' components by it
 * (GEPA's merge takes each component from the member that changed it) without holding prompt text in
 * its history.
 */
export type Fingerprint = Record<string, string>;

/** The outcome of one reflect or merge step: the new candidate, or why there is none. */
export interface GepaChild {
  /** `r<iteration>c1`, stored as a candidate of the cycle; null when the step gave no child. */
  child: string | null;
  fingerprint: Fingerprint | null;
  /** Why there is no child: the reflection's answer was rejected, it repeats an earlier candidate, nothing to merge. */
  note?: string;
  llmCalls: number;
}

interface StepInput {
  cycleId: string;
  agent: string;
  incumbentVersion: number;
  /** The search iteration: the step's candidate is `r<iteration>c1`. */
  iteration: number;
  optimizer: CycleSettings["optimizer"];
}

/**
 * The side effects of a GEPA search (workflows/gepa-search.ts): reading per-task rewards and calling
 * the optimizer for one reflect or merge step. The pool, its scores, ancestry and the budget stay in the
 * workflow; each call here is idempotent (rollouts and candidates are keyed, the optimizer's answer is
 * kept under its request id), so a retried step neither asks the model twice nor stores twice.
 */
export function createGepaActivities(deps: ActivityDependencies) {
  const { store, config } = deps;
  const planFor = scoringPlans(config);
  const agentNamed = (name: string) => nonRetryable(() => config.agents.get(name));

  /** What the search works on: the train tasks outside the dev set (the minibatches), the components a reflection may rewrite, the incumbent's fingerprint. */
  async function prepareGepaSearch(input: { agent: string; dataset: string; incumbentVersion: number; devFraction: number }) {
    const agent = agentNamed(input.agent);
    const incumbent = await store.resources.getVersion(agent.prompt.resource, input.incumbentVersion);
    const fitTaskIds = (await store.datasets.taskIds(input.dataset, "train")).filter((taskId) => !isDevTask(taskId, input.devFraction));
    return { fitTaskIds, components: reflectableComponents(agent, incumbent.content.components), fingerprint: fingerprintOf(incumbent.content.components) };
  }

  /** One prompt's reward on each task of a phase (a run without a reward counts as -1, the worst), and its summary score. */
  async function contenderRewards(input: { cycleId: string; agent: string; phase: RolloutPhase; prompt: PromptRef; taskIds: string[] }): Promise<{ score: ContenderScore; rewards: Record<string, number> }> {
    const { weights } = planFor(agentNamed(input.agent));
    const rollouts = await store.rollouts.getMany(input.taskIds.map((taskId) => rolloutId(input.cycleId, input.phase, contenderKey(input.prompt), taskId)));
    const rewards: Record<string, number> = Object.fromEntries(input.taskIds.map((taskId) => [taskId, -1]));
    for (const rollout of rollouts) rewards[rollout.taskId!] = rolloutReward(weights, rollout.rewards) ?? -1;
    return { score: summarize("version" in input.prompt ? INCUMBENT : input.prompt.candidateId, rollouts, weights), rewards };
  }

  /** Asks the reflection model for a new text of `component` of `parent`, from the parent's runs on its minibatch. */
  async function reflectCandidate(input: StepInput & { parent: string; component: string; runs: { phase: RolloutPhase; prompt: PromptRef; taskIds: string[] } }): Promise<GepaChild> {
    const agent = agentNamed(input.agent);
    const { incumbent, parents } = await promptsOf(input, agent, [input.parent]);
    const rollouts = await store.rollouts.getMany(input.runs.taskIds.map((taskId) => rolloutId(input.cycleId, input.runs.phase, contenderKey(input.runs.prompt), taskId)));
    const expected = await expectedOf(store, rollouts);
    const contractRollout = contractRolloutsFor(agent, planFor(agent).weights);
    const runs = rollouts.map((rollout) => contractRollout(rollout, input.parent, expected.get(rollout.id) ?? null));
    if (!runs.some((run) => run.reward !== null)) return { child: null, fingerprint: null, note: "no run of the minibatch has a reward: no feedback to reflect on", llmCalls: 0 };
    return step(input, agent, incumbent, parents, { step: "reflect", component: input.component }, runs);
  }

  /** GEPA's merge of two pool members with a common ancestor; `parents[0]`'s text wins where both changed a component. */
  async function mergeCandidates(input: StepInput & { parents: [string, string]; ancestor: string }): Promise<GepaChild> {
    const agent = agentNamed(input.agent);
    const { incumbent, parents } = await promptsOf(input, agent, [...input.parents, input.ancestor]);
    const ancestor = parents.pop()!;
    return step(input, agent, incumbent, parents, { step: "merge", ancestor }, []);
  }

  async function promptsOf(input: StepInput, agent: AgentDefinition, ids: string[]) {
    const incumbent = await store.resources.getVersion(agent.prompt.resource, input.incumbentVersion);
    const parents = await Promise.all(
      ids.map(async (id) => ({ id, components: id === INCUMBENT ? incumbent.content.components : (await store.cycles.candidate(input.cycleId, id)).content.components })),
    );
    return { incumbent: { version: incumbent.version, ...incumbent.content }, parents };
  }

  async function step(
    input: StepInput,
    agent: AgentDefinition,
    incumbent: PromptContent & { version: number },
    parents: OptimizerRequest["parents"],
    gepa: NonNullable<OptimizerRequest["gepa"]>,
    rollouts: OptimizerRequest["rollouts"],
  ): Promise<GepaChild> {
    const request: OptimizerRequest = {
      schema_version: OPTIMIZER_CONTRACT_VERSION,
      command: "propose",
      request_id: `${input.cycleId}/gepa/${input.iteration}/${gepa.step}`,
      algorithm: "gepa",
      seed: input.optimizer.seed,
      round: input.iteration,
      params: optimizerParams(input.optimizer),
      agent: agentSpecFor(agent, incumbent.components),
      prompt: { version: incumbent.version, engine: incumbent.engine, components: incumbent.components },
      parents,
      rollouts,
      llm: null,
      gepa,
    };
    const response = await callOptimizer(deps, request, { usesModel: gepa.step === "reflect", timeoutMinutes: input.optimizer.timeoutMinutes });
    const llmCalls = Number(response.stats.llm_calls ?? 0);
    const [candidate] = response.candidates;
    if (!candidate) return { child: null, fingerprint: null, note: String(response.stats.note ?? "no child"), llmCalls };
    const repeated = (await earlierCandidates(store, input.cycleId, input.iteration)).get(componentsKey(candidate.components));
    if (repeated) return { child: null, fingerprint: null, note: `the same prompt as ${repeated}, scored already`, llmCalls };
    try {
      // Every candidate must be publishable as it is: the same check as every publish.
      validatePromptContent(agent, { engine: incumbent.engine, components: candidate.components });
    } catch (error) {
      if (error instanceof InvalidInputError) return { child: null, fingerprint: null, note: error.message, llmCalls };
      throw error;
    }
    const details = { round: input.iteration, algorithm: response.algorithm, seed: response.seed, step: gepa.step, ...(gepa.step === "reflect" ? { component: gepa.component } : { ancestor: gepa.ancestor.id, parents: parents.map((parent) => parent.id) }) };
    await store.cycles.saveCandidates([storedCandidate(input.cycleId, incumbent.engine, candidate, details)]);
    return { child: candidate.id, fingerprint: fingerprintOf(candidate.components), llmCalls };
  }

  return { prepareGepaSearch, contenderRewards, reflectCandidate, mergeCandidates };
}

/**
 * The components a reflection may rewrite, in the order the agent declares them (a stored prompt's
 * keys come back in the database's order): editable label components, and editable free-text
 * components that have text (demonstrations are the few-shot algorithm's).
 */
export function reflectableComponents(agent: AgentDefinition, components: Record<string, string>): string[] {
  const labels = new Set(Object.values(agent.prompt.labelComponents));
  const declared = Object.keys(agent.prompt.seed.components);
  const rank = (name: string) => (declared.includes(name) ? declared.indexOf(name) : declared.length);
  return Object.keys(components)
    .filter((name) => agent.prompt.editable.includes(name) && name !== agent.prompt.examplesComponent && (labels.has(name) || components[name]!.trim() !== ""))
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

export function fingerprintOf(components: Record<string, string>): Fingerprint {
  return Object.fromEntries(Object.entries(components).map(([name, text]) => [name, createHash("sha256").update(text).digest("hex").slice(0, 16)]));
}

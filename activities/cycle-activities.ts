import { createHash } from "node:crypto";
import { join } from "node:path";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import type { Client } from "@temporalio/client";
import { readDatasetFile } from "../agents/dataset-file.ts";
import { validatePromptContent } from "../agents/prompt-validation.ts";
import type { AgentRunner } from "../agents/runner.ts";
import type { AgentDefinition } from "../agents/types.ts";
import type { LoadedConfig } from "../config/load.ts";
import { GROUND_TRUTH, rolloutReward, type ScoringPlan, scoringPlan } from "../scorers/registry.ts";
import type { ScoringContext } from "../scorers/types.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "../store/errors.ts";
import { type ConfusionMatrix, confusionMatrices } from "../store/analysis.ts";
import type { GuardSettings } from "../store/canaries.ts";
import type { Store } from "../store/index.ts";
import type { ResourceVersion } from "../store/resources.ts";
import type { Rollout } from "../store/rollouts.ts";
import type { PromptContent, RolloutPhase } from "../store/schema.ts";
import { lowerBound, mean, meanInterval, pairedDifferences } from "../stats/intervals.ts";
import type { ContenderEvaluation, EvaluationResult } from "../workflows/evaluation.ts";
import type { BatchJob } from "../workflows/batch-plan.ts";
import { type ContenderScore, type CycleProgress, type CycleResult, type CycleSettings, type GateDecision, INCUMBENT, type MeanInterval, type TestEvaluation } from "../workflows/types.ts";
import { type AgentTasksResult, HEARTBEAT_EVERY_MS, runAgentTasks } from "./agent-batch.ts";
import { OptimizerError, runOptimizer } from "./python-bridge.ts";
import { addMissingRewards, type Expected, expectedOf } from "./rewarding.ts";
import { agentSpecFor, algorithmRefusal, componentsKey, OPTIMIZER_CONTRACT_VERSION, type OptimizerRequest, type OptimizerResponse, optimizerParams } from "./optimizer-contract.ts";

export interface ActivityDependencies {
  config: LoadedConfig;
  store: Store;
  /** Built on first use: loading a local model is not free, and most activities never need it. */
  runnerFor(agent: AgentDefinition): AgentRunner;
  /** What scorers need from this process: the judge's model, built on first use. */
  scoring: ScoringContext;
  /** The OpenAI-compatible endpoint model-based optimizers (APO) critique and edit with, for one call. */
  optimizerModel(): Promise<{ endpoint: NonNullable<OptimizerRequest["llm"]>; close(): Promise<void> }>;
}

interface DeployInput {
  cycleId: string;
  agent: string;
  candidateId: string;
  incumbentVersion: number;
  metrics: Record<string, unknown>;
  reason: string;
}

/** Which prompt a batch runs: a published version, or an unpublished candidate of this cycle (or of `cycleId`). */
export type PromptRef = { version: number } | { candidateId: string; cycleId?: string };

export interface BatchInput {
  cycleId: string;
  agent: string;
  dataset: string;
  phase: RolloutPhase;
  /** Each prompt with its tasks; `repeat` numbers a repeated evaluation's run (from 1): each repeat of a task is a rollout of its own. */
  jobs: BatchJob[];
  concurrency: number;
}

export interface BeginCycleInput {
  cycleId: string;
  agent: string;
  trigger: string;
  /** Train on a data set's train split... */
  dataset?: string;
  /** ...or on the live traffic (worker queue, OTLP) that arrived in the window ending at `windowEnd`. */
  traffic?: { windowEnd: string; windowMs: number; minScored: number };
  devFraction: number;
  /** The optimizer algorithm: one that cannot change this agent's prompt fails the cycle before anything is written. */
  algorithm: string;
}

export type BeginCycleResult =
  | {
      status: "started";
      /** Where the cycle's train rollouts are: collected by this cycle, or taken from live traffic. */
      collected: "cycle" | "traffic";
      /** The data set the cycle runs on: the one given, or a snapshot of the traffic window. */
      dataset: string;
      incumbentVersion: number;
      /** Tasks the agent runs in collect (none for traffic: those rollouts exist). */
      trainTaskIds: string[];
      /** Train tasks held out of the optimizer's input, on which the search scores candidates. */
      devTaskIds: string[];
      validationTaskIds: string[];
      /** The data set's test split: neither the optimizer nor the gate sees it; a deployed version is measured on it. */
      testTaskIds: string[];
    }
  | { status: "busy"; holder: string }
  | { status: "not-enough-data"; detail: string };

/** Which rewards count for an agent and with what weights (its own scorers, or `cycle.scorers`), built once per agent. */
export function scoringPlans(config: LoadedConfig): (agent: AgentDefinition) => ScoringPlan {
  const plans = new Map<string, ScoringPlan>();
  return (agent) => {
    let plan = plans.get(agent.id);
    if (!plan) plans.set(agent.id, (plan = nonRetryable(() => scoringPlan(agent, config.cycle.scorers))));
    return plan;
  };
}

export function createCycleActivities(deps: ActivityDependencies) {
  const { store, config } = deps;
  const planFor = scoringPlans(config);

  async function beginCycle(input: BeginCycleInput): Promise<BeginCycleResult> {
    const devOf = (ids: string[]) => ids.filter((id) => isDevTask(id, input.devFraction));
    const agent = nonRetryable(() => config.agents.get(input.agent));
    const refusal = algorithmRefusal(agent, input.algorithm);
    if (refusal) throw ApplicationFailure.nonRetryable(refusal, "InvalidInput");
    const incumbentVersion = (await prepareAgent(store, agent, input.dataset)).version;
    if (input.dataset) await checkDatasetFor(agent, input.dataset);
    await store.cycles.create({ id: input.cycleId, agent: agent.id, dataset: input.dataset ?? null, trigger: input.trigger });
    const lease = await acquireAgentLease(agent.id, input.cycleId);
    if (!lease.acquired) {
      await store.cycles.update(input.cycleId, { phase: "done", outcome: "skipped", outcomeDetail: `cycle ${lease.holder} is running for agent ${agent.id}`, finished: true });
      return { status: "busy", holder: lease.holder };
    }
    if (input.traffic) {
      const snapshot = await snapshotTraffic(agent, input.cycleId, input.traffic);
      if (!snapshot.enough) {
        await store.cycles.update(input.cycleId, { phase: "done", outcome: "skipped", outcomeDetail: snapshot.detail, finished: true });
        await store.cycles.releaseLease(agent.id, input.cycleId);
        return { status: "not-enough-data", detail: snapshot.detail };
      }
      await store.cycles.update(input.cycleId, { phase: "train", incumbentVersion, dataset: snapshot.dataset });
      const validationTaskIds = await store.datasets.taskIds(snapshot.dataset, "validation");
      const devTaskIds = devOf(await store.datasets.taskIds(snapshot.dataset, "train"));
      return { status: "started", collected: "traffic", dataset: snapshot.dataset, incumbentVersion, trainTaskIds: [], devTaskIds, validationTaskIds, testTaskIds: [] };
    }
    const dataset = input.dataset!;
    const trainTaskIds = await store.datasets.taskIds(dataset, "train");
    const validationTaskIds = await store.datasets.taskIds(dataset, "validation");
    const testTaskIds = await store.datasets.taskIds(dataset, "test");
    await store.cycles.update(input.cycleId, { phase: "collect", incumbentVersion });
    return { status: "started", collected: "cycle", dataset, incumbentVersion, trainTaskIds, devTaskIds: devOf(trainTaskIds), validationTaskIds, testTaskIds };
  }

  async function checkDatasetFor(agent: AgentDefinition, name: string): Promise<void> {
    const dataset = await store.datasets.get(name).catch(rethrowNonRetryable);
    if (dataset.agent !== agent.id) {
      throw ApplicationFailure.nonRetryable(`Dataset "${dataset.name}" was imported for agent "${dataset.agent}", not "${agent.id}".`, "InvalidInput");
    }
    const splits = { train: dataset.splits.train ?? 0, validation: dataset.splits.validation ?? 0 };
    if (splits.train === 0 || splits.validation === 0) {
      throw ApplicationFailure.nonRetryable(
        `Dataset "${name}" needs tasks in both splits (train: ${splits.train}, validation: ${splits.validation}); the gate judges candidates on validation tasks the optimizer never saw.`,
        "InvalidInput",
      );
    }
  }

  /**
   * Freezes a traffic window into a data set of its own: its train split is the rollouts that happened
   * (the optimizer learns from them as they are), its validation split the inputs of a held-out
   * share of them (the gate runs incumbent and candidates on those). Scores what can be scored first.
   */
  async function snapshotTraffic(agent: AgentDefinition, cycleId: string, traffic: NonNullable<BeginCycleInput["traffic"]>) {
    const to = new Date(traffic.windowEnd);
    const from = new Date(to.getTime() - traffic.windowMs);
    const window = `${from.toISOString()} to ${to.toISOString()}`;
    const rollouts = await store.rollouts.listTraffic({ agent: agent.id, from, to });
    const expected = await expectedOf(store, rollouts);
    await addConfiguredRewards(agent, rollouts, expected);
    const { weights } = planFor(agent);
    const scored = (await store.rollouts.getMany(rollouts.map((rollout) => rollout.id))).filter((rollout) => rolloutReward(weights, rollout.rewards) !== undefined);
    const train: Rollout[] = [];
    const validation: Rollout[] = [];
    for (const rollout of scored) {
      if (!isHeldOut(rollout.id)) train.push(rollout);
      else if (expected.get(rollout.id)) validation.push(rollout);
    }
    const neededForValidation = Math.max(1, Math.ceil(traffic.minScored / 4));
    const counts = `${rollouts.length} rollouts in ${window}, ${scored.length} scored, ${validation.length} held out with ground truth for validation`;
    if (train.length < traffic.minScored || validation.length < neededForValidation) {
      return { enough: false as const, detail: `skipped: not enough data (${counts}; needs ${traffic.minScored} scored for training and ${neededForValidation} for validation)` };
    }
    const dataset = `traffic-${cycleId}`;
    const toTask = (split: "train" | "validation") => (rollout: Rollout) => ({ id: rollout.id, input: rollout.input, expected: expected.get(rollout.id) ?? null, split });
    const tasks = [...train.map(toTask("train")), ...validation.map(toTask("validation"))];
    if (!(await store.datasets.exists(dataset))) {
      await store.datasets.importTasks({ name: dataset, agent: agent.id, source: `traffic ${window}`, tasks }).catch((error: unknown) => {
        if (!(error instanceof ConflictError)) throw error;
      });
    }
    return { enough: true as const, dataset, detail: counts };
  }
  /** The lease of a cycle whose workflow is gone (terminated, timed out, reset) must not block the agent forever. */
  async function acquireAgentLease(agent: string, cycleId: string) {
    const lease = await store.cycles.acquireLease(agent, cycleId);
    if (lease.acquired) return lease;
    if (await workflowIsRunning(lease.holder)) return lease;
    if (await store.cycles.takeOverLease(agent, lease.holder, cycleId)) return { acquired: true as const };
    return store.cycles.acquireLease(agent, cycleId);
  }

  async function workflowIsRunning(workflowId: string): Promise<boolean> {
    const client: Client = Context.current().client;
    try {
      const description = await client.workflow.getHandle(workflowId).describe();
      return description.status.name === "RUNNING";
    } catch (error) {
      if ((error as Error).name === "WorkflowNotFoundError") return false;
      throw error;
    }
  }

  async function resolvePrompt(cycleId: string, agent: AgentDefinition, ref: PromptRef): Promise<{ content: PromptContent; version: number | null; candidateId: string | null }> {
    if ("version" in ref) {
      const version = await store.resources.getVersion(agent.prompt.resource, ref.version);
      return { content: version.content, version: ref.version, candidateId: null };
    }
    const candidate = await store.cycles.candidate(ref.cycleId ?? cycleId, ref.candidateId).catch(rethrowNonRetryable);
    return { content: candidate.content, version: null, candidateId: ref.candidateId };
  }

  /**
   * Runs the agent once, on the first task the cycle will run, with the incumbent prompt: a model that
   * does not load or answer (a missing model file, a refused endpoint) fails the cycle here, with its
   * error, instead of every rollout failing. The probe's answer is not stored.
   */
  async function checkAgentRuns(input: { agent: string; dataset: string; taskId: string; incumbentVersion: number }): Promise<void> {
    const agent = nonRetryable(() => config.agents.get(input.agent));
    const prompt = await store.resources.getVersion(agent.prompt.resource, input.incumbentVersion);
    const [task] = await store.datasets.tasks(input.dataset, [input.taskId]);
    if (!task) throw ApplicationFailure.nonRetryable(`Task "${input.taskId}" of data set "${input.dataset}" does not exist.`, "NotFound");
    let run: AgentRunner;
    try {
      run = deps.runnerFor(agent);
    } catch (error) {
      throw ApplicationFailure.nonRetryable(`Agent "${agent.id}" cannot run: ${(error as Error).message}`, "AgentUnavailable");
    }
    const result = await run(task.input, prompt.content, Context.current().cancellationSignal);
    if (result.status === "failed") throw ApplicationFailure.create({ message: `Agent "${agent.id}" failed before the cycle collected anything (model ${result.model}): ${result.error}`, type: "AgentUnavailable" });
  }

  /**
   * Runs the agent over a batch of tasks with bounded concurrency. Each rollout's id is derived from
   * (cycle, phase, prompt, task), and rollouts already stored by an earlier attempt are skipped, so a
   * retry after a worker died neither loses nor duplicates a rollout.
   */
  async function runAgentBatch(input: BatchInput): Promise<AgentTasksResult> {
    const agent = nonRetryable(() => config.agents.get(input.agent));
    const jobs = await Promise.all(
      input.jobs.map(async (job) => {
        const contender = `${contenderKey(job.prompt)}${job.repeat && job.repeat > 1 ? `#${job.repeat}` : ""}`;
        return { prompt: await resolvePrompt(input.cycleId, agent, job.prompt), taskIds: job.taskIds, idFor: (taskId: string) => rolloutId(input.cycleId, input.phase, contender, taskId) };
      }),
    );
    return runAgentTasks(store, {
      agent,
      run: deps.runnerFor(agent),
      dataset: input.dataset,
      jobs,
      concurrency: input.concurrency,
      origin: { source: "queue", cycleId: input.cycleId, phase: input.phase },
      scoring: { scorers: planFor(agent).computed, context: deps.scoring },
    });
  }

  /** Adds the configured computed rewards (cycle.scorers) to every rollout of the phase that lacks them; running it twice adds nothing. */
  async function scoreRollouts(input: { cycleId: string; dataset: string; phase: RolloutPhase }): Promise<{ scored: number; added: number }> {
    // Every rollout of a cycle ran a task of the cycle's data set (`input.dataset`): expectedOf finds it there.
    const rollouts = await store.rollouts.listForCycle({ cycleId: input.cycleId, phase: input.phase });
    if (rollouts.length === 0) return { scored: 0, added: 0 };
    const agent = nonRetryable(() => config.agents.get(rollouts[0]!.agent));
    const added = await addConfiguredRewards(agent, rollouts, await expectedOf(store, rollouts));
    return { scored: rollouts.filter((rollout) => rollout.rewards.length > 0).length + added, added };
  }

  /** A scorer that cannot compute (the judge's model unreachable) fails the activity, which is retried: the gate must not judge on partial rewards. */
  async function addConfiguredRewards(agent: AgentDefinition, rollouts: Rollout[], expected: Expected): Promise<number> {
    const { counts, failures } = await addMissingRewards(store, rollouts, planFor(agent).computed, { expected, context: deps.scoring, concurrency: config.cycle.concurrency });
    if (failures.length > 0) throw new Error(`${failures.length} rewards could not be computed, e.g. ${failures[0]!.scorer} on ${failures[0]!.rolloutId}: ${failures[0]!.error}`);
    return counts.scored;
  }

  /** The rollouts the optimizer learns from, with the ground truth of each. */
  async function trainingRollouts(cycleId: string, dataset: string, collected: "cycle" | "traffic"): Promise<{ rollouts: Rollout[]; expected: Map<string, Record<string, unknown> | null> }> {
    if (collected === "traffic") {
      const tasks = await store.datasets.tasks(dataset, await store.datasets.taskIds(dataset, "train"));
      return { rollouts: await store.rollouts.getMany(tasks.map((task) => task.id)), expected: new Map(tasks.map((task) => [task.id, task.expected])) };
    }
    const rollouts = await store.rollouts.listForCycle({ cycleId, phase: "collect" });
    return { rollouts, expected: await expectedOf(store, rollouts) };
  }

  /** The incumbent's record on the rollouts the cycle trains from. */
  async function summarizeTraining(input: { cycleId: string; agent: string; dataset: string; collected: "cycle" | "traffic" }): Promise<ContenderScore> {
    const agent = nonRetryable(() => config.agents.get(input.agent));
    return summarize(INCUMBENT, (await trainingRollouts(input.cycleId, input.dataset, input.collected)).rollouts, planFor(agent).weights);
  }

  /** Mean reward (of the configured scorers) and per-field accuracy of each contender on the validation split. */
  async function summarizeContenders(input: { cycleId: string; agent: string; phase: RolloutPhase; contenders: string[]; taskIds?: string[] }): Promise<ContenderScore[]> {
    const { weights } = planFor(nonRetryable(() => config.agents.get(input.agent)));
    const only = input.taskIds ? new Set(input.taskIds) : undefined;
    const rollouts = (await store.rollouts.listForCycle({ cycleId: input.cycleId, phase: input.phase })).filter((rollout) => !only || only.has(rollout.taskId ?? ""));
    return input.contenders.map((contender) =>
      summarize(
        contender,
        rollouts.filter((rollout) => (rollout.candidateId ?? INCUMBENT) === contender),
        weights,
      ),
    );
  }

  async function proposeCandidates(input: {
    cycleId: string;
    agent: string;
    dataset: string;
    collected: "cycle" | "traffic";
    incumbentVersion: number;
    round: number;
    /** The beam members to improve: "incumbent" or candidate ids of this cycle. */
    parents: string[];
    optimizer: CycleSettings["optimizer"];
  }): Promise<{ candidates: { id: string; parent: string }[]; rounds: unknown[]; stats: Record<string, unknown> }> {
    const agent = nonRetryable(() => config.agents.get(input.agent));
    const incumbent = await store.resources.getVersion(agent.prompt.resource, input.incumbentVersion);
    const parents = await Promise.all(
      input.parents.map(async (id) => ({ id, components: id === INCUMBENT ? incumbent.content.components : (await store.cycles.candidate(input.cycleId, id)).content.components })),
    );
    // The optimizer learns from the incumbent's rollouts outside the dev tasks (which score the search)
    // and from each candidate parent's own dev rollouts.
    const training = await trainingRollouts(input.cycleId, input.dataset, input.collected);
    const devFraction = input.optimizer.devFraction;
    const fit = training.rollouts.filter((rollout) => !isDevTask(trainingTaskId(rollout, input.collected), devFraction));
    const search = (await store.rollouts.listForCycle({ cycleId: input.cycleId, phase: "search" })).filter(
      (rollout) => rollout.candidateId !== null && input.parents.includes(rollout.candidateId),
    );
    const searchExpected = await expectedOf(store, search);
    const contractRollout = contractRolloutsFor(agent, planFor(agent).weights);
    const usesModel = input.optimizer.algorithm === "apo";
    const request: OptimizerRequest = {
      schema_version: OPTIMIZER_CONTRACT_VERSION,
      command: "propose",
      request_id: `${input.cycleId}/round/${input.round}`,
      algorithm: input.optimizer.algorithm,
      seed: input.optimizer.seed,
      round: input.round,
      params: optimizerParams(input.optimizer),
      agent: agentSpecFor(agent, incumbent.content.components),
      prompt: { version: incumbent.version, engine: incumbent.content.engine, components: incumbent.content.components },
      parents,
      rollouts: [
        ...fit.map((rollout) => contractRollout(rollout, INCUMBENT, training.expected.get(rollout.id) ?? null)),
        ...search.map((rollout) => contractRollout(rollout, rollout.candidateId!, searchExpected.get(rollout.id) ?? null)),
      ],
      llm: null,
    };
    const response = await callOptimizer(deps, request, { usesModel, timeoutMinutes: input.optimizer.timeoutMinutes });
    // A child identical to one an earlier round already scored would only be scored again.
    const scoredBefore = await earlierCandidates(store, input.cycleId, input.round);
    const fresh = response.candidates.filter((candidate) => !scoredBefore.has(componentsKey(candidate.components)));
    await store.cycles.saveCandidates(
      fresh.map((candidate) => storedCandidate(input.cycleId, incumbent.content.engine, candidate, { round: input.round, trainScore: candidate.train_score, algorithm: response.algorithm, seed: response.seed })),
    );
    return {
      candidates: fresh.map((candidate) => ({ id: candidate.id, parent: candidate.parent })),
      rounds: response.rounds,
      stats: { ...response.stats, repeatedEarlierRounds: response.candidates.length - fresh.length },
    };
  }

  /**
   * Publishes the winning candidate as a new immutable version and moves `production` to it in one
   * transaction, compare-and-set on the incumbent. Keyed by the cycle, so a retried deploy returns
   * the version the first attempt made instead of making a second one.
   */
  /** Per contender, per task: the reward averaged over the task's repeats (tasks without a counted reward left out). */
  async function taskRewards(cycleId: string, agent: AgentDefinition, phase: RolloutPhase, contenders: readonly string[], contenderOf = cycleContender): Promise<Map<string, Map<string, number>>> {
    const { weights } = planFor(agent);
    const rollouts = await store.rollouts.listForCycle({ cycleId, phase });
    return new Map(
      contenders.map((contender) => {
        const rewards = Map.groupBy(
          rollouts.filter((rollout) => contenderOf(rollout) === contender && rollout.taskId !== null),
          (rollout) => rollout.taskId!,
        );
        const perTask = [...rewards].flatMap(([taskId, runs]) => {
          const values = runs.flatMap((run) => rolloutReward(weights, run.rewards) ?? []);
          return values.length > 0 ? [[taskId, mean(values)] as const] : [];
        });
        return [contender, new Map(perTask)];
      }),
    );
  }

  /**
   * The gate: each finalist against the incumbent on the same validation tasks. A finalist's gain is the
   * mean over tasks of (its reward - the incumbent's); it is held to a one-sided lower bound at the
   * configured confidence, Bonferroni-corrected for the number of finalists, so that picking the best of
   * several on the same tasks does not make noise look like a gain. The finalist with the highest bound is
   * deployed when that bound exceeds the margin.
   */
  async function judgeValidation(input: { cycleId: string; agent: string; finalists: string[]; confidence: number; margin: number; repeats: number }): Promise<GateDecision> {
    const agent = nonRetryable(() => config.agents.get(input.agent));
    const rewards = await taskRewards(input.cycleId, agent, "validate", [INCUMBENT, ...input.finalists]);
    const incumbent = rewards.get(INCUMBENT)!;
    const correctedConfidence = 1 - (1 - input.confidence) / Math.max(1, input.finalists.length);
    const comparisons = input.finalists.map((contender) => {
      const differences = pairedDifferences(incumbent, rewards.get(contender)!);
      return { contender, tasks: differences.length, meanDifference: differences.length > 0 ? mean(differences) : 0, lowerBound: lowerBound(differences, correctedConfidence) };
    });
    const ranked = [...comparisons].sort((a, b) => (b.lowerBound ?? -Infinity) - (a.lowerBound ?? -Infinity) || b.meanDifference - a.meanDifference);
    const chosen = ranked[0];
    return {
      method: `paired t over validation tasks, one-sided, Bonferroni over ${input.finalists.length} finalist${input.finalists.length === 1 ? "" : "s"}`,
      confidence: input.confidence,
      correctedConfidence,
      margin: input.margin,
      repeats: input.repeats,
      comparisons,
      chosen: chosen?.contender ?? null,
      deploy: chosen?.lowerBound != null && chosen.lowerBound > input.margin,
    };
  }

  /** The incumbent and the chosen candidate on the test split, each with its 95 % interval, and their paired difference. */
  async function measureTest(input: { cycleId: string; agent: string; candidate: string }): Promise<TestEvaluation> {
    const agent = nonRetryable(() => config.agents.get(input.agent));
    const rewards = await taskRewards(input.cycleId, agent, "test", [INCUMBENT, input.candidate]);
    const incumbent = rewards.get(INCUMBENT)!;
    const deployed = rewards.get(input.candidate)!;
    const differences = pairedDifferences(incumbent, deployed);
    return { tasks: differences.length, incumbent: meanInterval([...incumbent.values()]), deployed: meanInterval([...deployed.values()]), difference: meanInterval(differences) };
  }

  /** `agl test`'s report: each contender's reward with its interval, per scorer and per field, its confusion matrices, and the paired difference of the first two. */
  async function summarizeEvaluation(input: { evaluationId: string; agent: string; contenders: { contender: string; description: string }[] }): Promise<Pick<EvaluationResult, "contenders" | "difference">> {
    const agent = nonRetryable(() => config.agents.get(input.agent));
    const names = input.contenders.map((entry) => entry.contender);
    const rewards = await taskRewards(input.evaluationId, agent, "test", names, evaluatedContender);
    const rollouts = await store.rollouts.listForCycle({ cycleId: input.evaluationId, phase: "test" });
    const expected = await expectedOf(store, rollouts);
    const contenders = input.contenders.map(({ contender, description }): ContenderEvaluation => {
      const own = rollouts.filter((rollout) => evaluatedContender(rollout) === contender);
      const perTask = [...rewards.get(contender)!.values()];
      return {
        contender,
        description,
        rollouts: own.length,
        failed: own.filter((rollout) => rollout.status === "failed").length,
        reward: perTask.length > 0 ? meanInterval(perTask) : null,
        rewardByScorer: rewardByScorer(own),
        fieldAccuracy: fieldAccuracyOf(own),
        confusion: confusionOf(agent, own, expected),
      };
    });
    const [first, second] = names;
    const differences = second === undefined ? [] : pairedDifferences(rewards.get(second)!, rewards.get(first!)!);
    return { contenders, difference: second === undefined ? null : { ...meanInterval(differences), of: first!, against: second } };
  }

  async function deployCandidate(input: DeployInput): Promise<{ version: number }> {
    return publishCandidate(input, [{ label: "production", expectedVersion: input.incumbentVersion }]);
  }

  /**
   * Publishes the winning candidate without moving `production` and puts it on the `canary` label at
   * `weight` (store/canaries.ts: one canary per agent, compare-and-set on `production` still being the
   * incumbent); the workflow then starts its guard. With another canary running, nothing is published.
   */
  async function deployCanary(input: DeployInput & { canaryId: string; weight: number; guard: GuardSettings }): Promise<{ status: "started"; version: number } | { status: "busy"; holder: string }> {
    const agent = nonRetryable(() => config.agents.get(input.agent));
    const running = await store.canaries.running(agent.prompt.resource);
    if (running && running.id !== input.canaryId) return { status: "busy", holder: running.id };
    const { version } = await publishCandidate(input, []);
    try {
      await store.canaries.start({
        id: input.canaryId,
        agent: agent.id,
        resource: agent.prompt.resource,
        version,
        weight: input.weight,
        actor: `cycle:${input.cycleId}`,
        reason: input.reason,
        settings: input.guard,
        expectedProduction: input.incumbentVersion,
      });
    } catch (error) {
      if (error instanceof ConflictError) throw ApplicationFailure.nonRetryable(error.message, "LabelConflict");
      return rethrowNonRetryable(error);
    }
    return { status: "started", version };
  }

  /** A new immutable version from the cycle's candidate (idempotent per cycle), with `labels` moved to it in the same transaction. */
  async function publishCandidate(input: DeployInput, labels: { label: string; expectedVersion: number }[]): Promise<{ version: number }> {
    const agent = nonRetryable(() => config.agents.get(input.agent));
    const candidate = await store.cycles.candidate(input.cycleId, input.candidateId);
    const content = nonRetryable(() => validatePromptContent(agent, candidate.content));
    try {
      const version = await store.resources.publish({
        name: agent.prompt.resource,
        content,
        parentVersion: input.incumbentVersion,
        createdBy: `cycle:${input.cycleId}`,
        metrics: input.metrics,
        note: `${candidate.strategy}: ${candidate.rationale}`,
        idempotencyKey: `deploy:${input.cycleId}`,
        labels,
        reason: input.reason,
      });
      return { version: version.version };
    } catch (error) {
      if (error instanceof ConflictError) throw ApplicationFailure.nonRetryable(error.message, "LabelConflict");
      throw error;
    }
  }

  async function recordCycle(input: { cycleId: string; progress: CycleProgress }): Promise<void> {
    await store.cycles.recordProgress(input.cycleId, { ...input.progress });
  }

  async function finishCycle(input: {
    cycleId: string;
    agent: string;
    outcome: "deployed" | "kept" | "skipped" | "failed" | "cancelled";
    detail: string;
    result?: CycleResult;
  }): Promise<void> {
    await store.cycles.update(input.cycleId, {
      phase: "done",
      outcome: input.outcome,
      outcomeDetail: input.detail,
      ...(input.result ? { metrics: { ...input.result }, deployedVersion: input.result.deployedVersion } : {}),
      finished: true,
    });
    await store.cycles.releaseLease(input.agent, input.cycleId);
  }

  return { beginCycle, checkAgentRuns, runAgentBatch, scoreRollouts, judgeValidation, measureTest, summarizeEvaluation, summarizeContenders, summarizeTraining, proposeCandidates, deployCandidate, deployCanary, recordCycle, finishCycle };
}

/**
 * Seeds what the agent needs on first use: version 1 of its prompt with the `production` label, and the
 * bundled data set `dataset` if it is one. Returns the version labelled `production`.
 */
export async function prepareAgent(store: Store, agent: AgentDefinition, dataset: string | undefined): Promise<ResourceVersion> {
  const production = await store.resources.findByLabel(agent.prompt.resource, "production");
  const incumbent =
    production ??
    (await store.resources
      .publish({
        name: agent.prompt.resource,
        content: agent.prompt.seed,
        parentVersion: null,
        createdBy: `agent:${agent.id}`,
        note: "seed: the agent's built-in instructions",
        idempotencyKey: `seed:${agent.prompt.resource}`,
        labels: [{ label: "production", expectedVersion: null }],
      })
      .catch(async (error: unknown) => {
        // Another process seeded it at the same moment; theirs is as good as ours.
        if (error instanceof ConflictError) return store.resources.getByLabel(agent.prompt.resource, "production");
        throw error;
      }));
  const bundled = dataset ? agent.datasets[dataset] : undefined;
  if (dataset && bundled && !(await store.datasets.exists(dataset))) {
    const tasks = await readDatasetFile(bundled, agent);
    await store.datasets.importTasks({ name: dataset, agent: agent.id, source: bundled, tasks }).catch((error: unknown) => {
      if (!(error instanceof ConflictError)) throw error;
    });
  }
  return incumbent;
}

/** Per scorer, over tasks: each task's rewards of that scorer (repeats, several ratings) averaged first. */
function rewardByScorer(rollouts: readonly Rollout[]): Record<string, MeanInterval> {
  const byScorer = new Map<string, Map<string, number[]>>();
  for (const rollout of rollouts) {
    for (const reward of rollout.rewards) {
      const tasks = byScorer.get(reward.scorer) ?? new Map<string, number[]>();
      const key = rollout.taskId ?? rollout.id;
      tasks.set(key, [...(tasks.get(key) ?? []), reward.value]);
      byScorer.set(reward.scorer, tasks);
    }
  }
  return Object.fromEntries([...byScorer].sort(([a], [b]) => a.localeCompare(b)).map(([scorer, tasks]) => [scorer, meanInterval([...tasks.values()].map(mean))]));
}

/** Per field, the share of ground-truth checks that gave full credit. */
function fieldAccuracyOf(rollouts: readonly Rollout[]): Record<string, { right: number; total: number; accuracy: number }> {
  const totals = new Map<string, { right: number; total: number }>();
  for (const reward of rollouts.flatMap((rollout) => rollout.rewards.filter((entry) => entry.scorer === GROUND_TRUTH))) {
    for (const [field, right] of Object.entries((reward.details.fields ?? {}) as Record<string, boolean>)) {
      const entry = totals.get(field) ?? { right: 0, total: 0 };
      entry.total++;
      if (right) entry.right++;
      totals.set(field, entry);
    }
  }
  return Object.fromEntries([...totals].map(([field, entry]) => [field, { ...entry, accuracy: entry.right / entry.total }]));
}

/** For each closed label field: expected labels (rows, in the agent's order) against the labels answered. */
function confusionOf(agent: AgentDefinition, rollouts: readonly Rollout[], expected: Expected): Record<string, ConfusionMatrix> {
  const cells = new Map<string, { field: string; expected: string; actual: string; n: number }>();
  for (const rollout of rollouts) {
    for (const field of Object.keys(agent.labels)) {
      const want = expected.get(rollout.id)?.[field];
      if (typeof want !== "string") continue;
      const got = rollout.output === null ? "(failed)" : typeof rollout.output[field] === "string" ? (rollout.output[field] as string) : "(missing)";
      const key = JSON.stringify([field, want, got]);
      const cell = cells.get(key) ?? { field, expected: want, actual: got, n: 0 };
      cell.n++;
      cells.set(key, cell);
    }
  }
  return confusionMatrices([...cells.values()], agent.labels);
}

/** In a cycle, a rollout ran the incumbent or one of the cycle's candidates. */
function cycleContender(rollout: Rollout): string {
  return rollout.candidateId ?? INCUMBENT;
}

/** In an evaluation, a rollout ran a published version or a candidate. */
export function evaluatedContender(rollout: Pick<Rollout, "candidateId" | "resourceVersion">): string {
  return rollout.candidateId ?? `v${rollout.resourceVersion}`;
}

/** What a rollout tells the optimizer: the message, the answer, the ground truth, the reward the gate counts and every scorer's reason. */
export function contractRolloutsFor(agent: AgentDefinition, weights: Readonly<Record<string, number>>) {
  return (rollout: Rollout, promptId: string, expected: Record<string, unknown> | null): OptimizerRequest["rollouts"][number] => ({
    id: rollout.id,
    task_id: rollout.taskId,
    prompt_id: promptId,
    input: rollout.input,
    message: agent.message(rollout.input),
    output: rollout.output,
    expected,
    // The reward the gate judges by: the weighted mean of the counted scorers (the others travel along in `rewards`).
    reward: rolloutReward(weights, rollout.rewards) ?? null,
    rewards: rollout.rewards.map((reward) => ({ scorer: reward.scorer, value: reward.value, reason: reward.reason })),
    error: rollout.error,
    ...(rollout.toolCalls?.length ? { tool_calls: rollout.toolCalls } : {}),
  });
}

/**
 * Runs the Python optimizer for the current activity: heartbeats its progress, lends it the optimizer
 * model when the algorithm calls one, and turns its failures into activity failures (bad input and
 * contract violations for good; crashes and hangs retried).
 */
export async function callOptimizer(
  deps: ActivityDependencies,
  request: OptimizerRequest,
  options: { usesModel: boolean; timeoutMinutes: number },
): Promise<OptimizerResponse> {
  const context = Context.current();
  let lastProgress = { done: 0, total: 0, message: "starting" };
  const timer = setInterval(() => context.heartbeat(lastProgress), HEARTBEAT_EVERY_MS);
  const llm = options.usesModel ? await deps.optimizerModel() : undefined;
  try {
    return await runOptimizer({
      command: deps.config.optimizer.command,
      workDir: join(deps.config.dataPath, "work", "optimizer"),
      request: { ...request, llm: llm?.endpoint ?? null },
      timeoutMs: options.timeoutMinutes * 60_000,
      signal: context.cancellationSignal,
      onProgress: (progress) => (lastProgress = progress),
    });
  } catch (error) {
    if (error instanceof OptimizerError) {
      if (error.kind === "cancelled") throw error;
      throw ApplicationFailure.create({ message: error.message, type: `Optimizer.${error.kind}`, nonRetryable: !error.retryable });
    }
    throw error;
  } finally {
    clearInterval(timer);
    await llm?.close();
  }
}

/** The prompts of the cycle's candidates from rounds before `round` (canonical components -> candidate id): a child equal to one is not scored again. */
export async function earlierCandidates(store: Store, cycleId: string, round: number): Promise<Map<string, string>> {
  const earlier = (await store.cycles.candidates(cycleId)).filter((candidate) => !candidate.id.startsWith(`r${round}c`));
  return new Map(earlier.map((candidate) => [componentsKey(candidate.content.components), candidate.id]));
}

/** A proposed child as the cycle stores it: its prompt, how it was made, its parent and what else the search records. */
export function storedCandidate(cycleId: string, engine: PromptContent["engine"], candidate: OptimizerResponse["candidates"][number], details: Record<string, unknown>) {
  return { cycleId, id: candidate.id, content: { engine, components: candidate.components }, strategy: candidate.strategy, rationale: candidate.rationale, details: { parent: candidate.parent, ...details } };
}

/** The train tasks the search scores candidates on, chosen by id so every retry and activity agrees. */
export function isDevTask(taskId: string, fraction: number): boolean {
  return createHash("sha256").update(`dev\u0000${taskId}`).digest().readUInt32BE(0) / 2 ** 32 < fraction;
}

/** In a traffic cycle the snapshot's task ids are the rollout ids. */
function trainingTaskId(rollout: Rollout, collected: "cycle" | "traffic"): string {
  return collected === "traffic" ? rollout.id : (rollout.taskId ?? rollout.id);
}

/** About 30% of a traffic window is held out for validation, chosen by rollout id so a retry chooses the same. */
function isHeldOut(rolloutId: string): boolean {
  return createHash("sha256").update(rolloutId).digest()[0]! % 10 < 3;
}

/** How a prompt is named in its rollouts' ids: the candidate's id, or `v<N>` for a published version. */
export function contenderKey(prompt: PromptRef): string {
  return "version" in prompt ? `v${prompt.version}` : prompt.candidateId;
}

export function rolloutId(cycleId: string, phase: string, contender: string, taskId: string): string {
  return `ro-${createHash("sha256").update(`${cycleId}\u0000${phase}\u0000${contender}\u0000${taskId}`).digest("hex").slice(0, 24)}`;
}

/** A rollout's reward is the mean of its rewards from the configured scorers; a contender's, the mean over its rollouts that have one. */
export function summarize(contender: string, rollouts: Rollout[], weights: Readonly<Record<string, number>>): ContenderScore {
  const rewards = rollouts.flatMap((rollout) => rolloutReward(weights, rollout.rewards) ?? []);
  const firstFailure = rollouts.find((rollout) => rollout.status === "failed");
  return {
    contender,
    rollouts: rollouts.length,
    failed: rollouts.filter((rollout) => rollout.status === "failed").length,
    ...(firstFailure ? { firstError: firstFailure.error ?? "no output" } : {}),
    meanReward: rewards.length > 0 ? rewards.reduce((sum, reward) => sum + reward, 0) / rewards.length : 0,
    fieldAccuracy: Object.fromEntries(Object.entries(fieldAccuracyOf(rollouts)).map(([field, totals]) => [field, totals.accuracy])),
  };
}

export function nonRetryable<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    return rethrowNonRetryable(error);
  }
}

/** Unknown names and invalid input fail the same way on every attempt: fail the activity for good. */
export function rethrowNonRetryable(error: unknown): never {
  if (error instanceof NotFoundError || error instanceof InvalidInputError) throw ApplicationFailure.nonRetryable(error.message, error.name);
  throw error;
}

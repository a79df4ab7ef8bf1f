import { ActivityFailure, ApplicationFailure, CancellationScope, defineQuery, isCancellation, ParentClosePolicy, setHandler, startChild, workflowInfo } from "@temporalio/workflow";
import { defineSearchAttributeKey } from "@temporalio/common";
import type { PromptRef } from "../activities/cycle-activities.ts";
import { type BatchJob, runPhaseBatches } from "./batch-plan.ts";
import { beamSearch, bestFirst } from "./beam-search.ts";
import { canaryGuard } from "./canary-guard.ts";
import { cycleActivities } from "./cycle-activities-proxies.ts";
import { gepaSearch } from "./gepa-search.ts";
import type { RolloutPhase } from "../store/schema.ts";
import type { ContenderScore, CycleInput, CycleProgress, CycleResult, GateDecision, MeanInterval, TestEvaluation } from "./types.ts";
import { INCUMBENT, PROGRESS_QUERY } from "./types.ts";

export const progressQuery = defineQuery<CycleProgress>(PROGRESS_QUERY);

/** Set by Temporal on every run a Schedule starts. */
const SCHEDULED_START_TIME = defineSearchAttributeKey("TemporalScheduledStartTime", "DATETIME");

/**
 * One training cycle for one agent: collect -> evaluate -> train/search (rounds) -> validate -> deploy.
 * Every side effect is an activity; this function only decides, so a cycle interrupted anywhere
 * (worker, Python child or Temporal server killed) resumes where it was.
 */
export async function trainingCycle(input: CycleInput): Promise<CycleResult> {
  const cycleId = workflowInfo().workflowId;
  const { settings } = input;
  const activities = cycleActivities(settings);
  const { bookkeeping, progressReports, agentBatches, scoring, preflight } = activities;

  const state: CycleProgress = { cycleId, agent: input.agent, phase: "starting", progress: { done: 0, total: 0 } };
  setHandler(progressQuery, () => state);
  // Progress is for watchers (the cycle's row, the dashboard): written in order, beside the cycle's work and
  // never awaited by it; the store ignores a write that lands after the outcome.
  let progressWrites: Promise<unknown> = Promise.resolve();
  const enter = async (phase: CycleProgress["phase"], total: number) => {
    state.phase = phase;
    state.progress = { done: 0, total };
    const progress = { ...state, progress: { ...state.progress } };
    progressWrites = progressWrites.then(() => progressReports.recordCycle({ cycleId, progress })).catch(() => undefined);
  };

  const begin = await bookkeeping.beginCycle({
    cycleId,
    agent: input.agent,
    trigger: input.trigger,
    ...(input.dataset ? { dataset: input.dataset } : {}),
    ...(input.traffic ? { traffic: { ...input.traffic, windowEnd: scheduledTime().toISOString() } } : {}),
    devFraction: settings.optimizer.devFraction,
    algorithm: settings.optimizer.algorithm,
  });
  if (begin.status !== "started") {
    state.phase = "done";
    const detail = begin.status === "busy" ? `cycle ${begin.holder} is already running for ${input.agent}` : begin.detail;
    return { cycleId, agent: input.agent, outcome: "skipped", detail, incumbentVersion: null, deployedVersion: null };
  }
  const { incumbentVersion, dataset, collected } = begin;
  state.incumbentVersion = incumbentVersion;

  /**
   * Runs a phase's jobs in agent batches and scores the rollouts: the batches reward each run as it ends,
   * and the evaluate step (idempotent: it adds only missing rewards) runs when a batch left some unscored.
   */
  const runBatches = async (jobs: BatchJob[], phase: RolloutPhase) => {
    const unscored = await runPhaseBatches(agentBatches, { cycleId, agent: input.agent, dataset, phase }, jobs, settings, (runs) => (state.progress.done += runs));
    if (unscored === 0) return;
    if (phase === "collect") await enter("evaluate", state.progress.total);
    await scoring.scoreRollouts({ cycleId, dataset, phase });
  };

  try {
    // A model that does not load or answer fails the cycle now, with its error, not after every run failed.
    const probeTask = begin.trainTaskIds[0] ?? begin.devTaskIds[0] ?? begin.validationTaskIds[0];
    if (probeTask) await preflight.checkAgentRuns({ agent: input.agent, dataset, taskId: probeTask, incumbentVersion });
    // Live traffic already happened: its rollouts were scored when the window was taken.
    if (collected === "cycle") {
      await enter("collect", begin.trainTaskIds.length);
      await runBatches([{ prompt: { version: incumbentVersion }, taskIds: begin.trainTaskIds }], "collect");
    }
    const training = await bookkeeping.summarizeTraining({ cycleId, agent: input.agent, dataset, collected });
    if (collected === "cycle") failIfEveryRunFailed("collect", [training]);

    const collect = { rollouts: training.rollouts, failed: training.failed, meanReward: training.meanReward };

    // Search on the dev tasks (train tasks the optimizer never saw); its state lives in this workflow's
    // history, so a crash resumes at the last finished step.
    const devTaskIds = begin.devTaskIds;
    if (collected === "traffic") {
      // Traffic ran on whatever version was live at the time: measure the incumbent itself on the dev tasks.
      await enter("search", devTaskIds.length);
      await runBatches([{ prompt: { version: incumbentVersion }, taskIds: devTaskIds }], "search");
    }
    // Traffic: the incumbent's search rollouts above, all on the dev tasks. A cycle: its collect rollouts on them.
    const [incumbentOnDev] = await bookkeeping.summarizeContenders({ cycleId, agent: input.agent, phase: collected === "traffic" ? "search" : "collect", contenders: [INCUMBENT], taskIds: devTaskIds });
    const { rounds, finalists } = await (settings.optimizer.algorithm === "gepa" ? gepaSearch : beamSearch)({
      cycleId,
      agent: input.agent,
      dataset,
      collected,
      incumbentVersion,
      settings,
      devTaskIds,
      incumbentOnDev: incumbentOnDev!,
      activities,
      progress: state,
      enter,
      runBatches,
    });
    const search = { rounds, finalists };
    if (finalists.length === 0) {
      const why = rounds.length === 0 ? "the optimizer proposed no candidates" : "no candidate scored above the incumbent on the dev tasks";
      return await finish({ outcome: "kept", detail: `kept v${incumbentVersion}: ${why}`, incumbentVersion, deployedVersion: null, collect, search });
    }

    const contenders: { name: string; prompt: PromptRef }[] = [
      { name: INCUMBENT, prompt: { version: incumbentVersion } },
      ...finalists.map((id) => ({ name: id, prompt: { candidateId: id } })),
    ];
    const repeats = settings.validationRepeats;
    await enter("validate", begin.validationTaskIds.length * contenders.length * repeats);
    await runBatches(
      contenders.flatMap((contender) => Array.from({ length: repeats }, (_, index) => ({ prompt: contender.prompt, taskIds: begin.validationTaskIds, repeat: index + 1 }))),
      "validate",
    );
    const scores = await bookkeeping.summarizeContenders({ cycleId, agent: input.agent, phase: "validate", contenders: contenders.map((c) => c.name) });
    failIfEveryRunFailed("validate", scores);
    const gate = await bookkeeping.judgeValidation({ cycleId, agent: input.agent, finalists, confidence: settings.confidence, margin: settings.margin, repeats });
    const baseline = scores[0]!;
    const best = scores.find((score) => score.contender === gate.chosen) ?? bestFirst(scores.slice(1))[0]!;
    const verdict = describeGate(gate, best.contender);

    if (!gate.deploy) {
      return await finish({ outcome: "kept", detail: `kept v${incumbentVersion}: ${verdict}`, incumbentVersion, deployedVersion: null, baseline, best, collect, search, gate });
    }
    // Decided. The test split, which neither the optimizer nor the gate saw, now measures what was chosen:
    // nothing below depends on it but the record.
    let test: TestEvaluation | undefined;
    if (begin.testTaskIds.length > 0) {
      await enter("test", begin.testTaskIds.length * 2);
      await runBatches(
        [{ version: incumbentVersion } as PromptRef, { candidateId: best.contender }].map((prompt) => ({ prompt, taskIds: begin.testTaskIds })),
        "test",
      );
      test = await bookkeeping.measureTest({ cycleId, agent: input.agent, candidate: best.contender });
    }
    await enter("deploy", 1);
    const deploy = {
      cycleId,
      agent: input.agent,
      candidateId: best.contender,
      incumbentVersion,
      metrics: { validation: best, baseline, gate, ...(test ? { test } : {}), margin: settings.margin, cycleId, algorithm: settings.optimizer.algorithm, rounds: rounds.length },
      reason: `cycle ${cycleId} deployed candidate ${best.contender}: ${verdict}${test ? `; ${describeTest(test, incumbentVersion)}` : ""}`,
    };
    const decided = { incumbentVersion, baseline, best, collect, search, gate, ...(test ? { test } : {}) };
    if (settings.deploy === "canary" && settings.guard && settings.canaryWeight) {
      // The canary's id keys its guard's workflow: a retried deploy finds the canary it started.
      const canaryId = `can-${cycleId}`;
      const started = await bookkeeping.deployCanary({ ...deploy, canaryId, weight: settings.canaryWeight, guard: settings.guard });
      if (started.status === "busy") {
        return await finish({ ...decided, outcome: "kept", detail: `kept v${incumbentVersion}: ${verdict}; not deployed, canary ${started.holder} is still running for ${input.agent}`, deployedVersion: null });
      }
      // Abandoned when the cycle ends: the guard outlives the cycle that started it.
      await startChild(canaryGuard, { workflowId: canaryId, args: [{ canaryId, settings: settings.guard }], parentClosePolicy: ParentClosePolicy.ABANDON });
      const testLine = test ? `; ${describeTest(test, incumbentVersion, started.version)}` : "";
      return await finish({
        ...decided,
        outcome: "deployed",
        detail: `deployed v${started.version} as a canary at ${settings.canaryWeight}% of keyed traffic, guarded by ${canaryId} (production stays v${incumbentVersion} until the guard promotes it): ${verdict}${testLine}`,
        deployedVersion: started.version,
        canary: { id: canaryId, weight: settings.canaryWeight },
      });
    }
    const deployed = await bookkeeping.deployCandidate(deploy);
    const testLine = test ? `; ${describeTest(test, incumbentVersion, deployed.version)}` : "";
    return await finish({ ...decided, outcome: "deployed", detail: `deployed v${deployed.version} (from v${incumbentVersion}): ${verdict}${testLine}`, deployedVersion: deployed.version });
  } catch (error) {
    const outcome = isCancellation(error) ? "cancelled" : "failed";
    await CancellationScope.nonCancellable(() => bookkeeping.finishCycle({ cycleId, agent: input.agent, outcome, detail: describeFailure(error) }));
    throw error;
  }

  async function finish(result: Omit<CycleResult, "cycleId" | "agent">): Promise<CycleResult> {
    const full: CycleResult = { cycleId, agent: input.agent, ...result };
    await bookkeeping.finishCycle({ cycleId, agent: input.agent, outcome: result.outcome, detail: result.detail, result: full });
    state.phase = "done";
    return full;
  }
}

/**
 * A phase in which every agent run failed measured nothing: the cycle fails with the first error instead
 * of ending "kept" on scores of failures.
 */
function failIfEveryRunFailed(phase: string, scores: ContenderScore[]): void {
  const runs = scores.reduce((sum, score) => sum + score.rollouts, 0);
  if (runs === 0 || scores.some((score) => score.failed < score.rollouts)) return;
  const first = scores.find((score) => score.firstError)?.firstError ?? "no error recorded";
  throw ApplicationFailure.nonRetryable(`Every one of the ${runs} agent runs of the ${phase} phase failed; the first error: ${first}`, "EveryRunFailed");
}

/** The slot a scheduled run is for (the end of its traffic window); a manual run's is its start. */
function scheduledTime(): Date {
  const slot = workflowInfo().typedSearchAttributes.get(SCHEDULED_START_TIME);
  return slot ?? workflowInfo().startTime;
}


function describeFailure(error: unknown): string {
  if (error instanceof ActivityFailure && error.cause) return describeFailure(error.cause);
  if (error instanceof ApplicationFailure) return `${error.type ?? "Error"}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

function formatReward(value: number): string {
  return value.toFixed(3);
}

function signed(value: number): string {
  return `${value >= 0 ? "+" : ""}${value.toFixed(3)}`;
}

/** The gate's numbers in one line: what the audit trail and `agl cycle status` show. */
function describeGate(gate: GateDecision, contender: string): string {
  const comparison = gate.comparisons.find((candidate) => candidate.contender === contender);
  if (!comparison) return "no finalist to compare";
  const bound = comparison.lowerBound === null ? "no lower bound (fewer than two tasks)" : `lower bound ${signed(comparison.lowerBound)} at ${formatPercent(gate.correctedConfidence)}`;
  const verdict = gate.deploy ? `above margin ${gate.margin}` : `not above margin ${gate.margin}`;
  return `${contender} vs incumbent on ${comparison.tasks} validation tasks${gate.repeats > 1 ? ` × ${gate.repeats} runs` : ""}: gain ${signed(comparison.meanDifference)}, ${bound}, ${verdict} (${gate.method})`;
}

/** The test split's numbers in one line. */
function describeTest(test: TestEvaluation, incumbentVersion: number, deployedVersion?: number): string {
  const interval = (value: MeanInterval, sign = false) => {
    const shown = sign ? signed : formatReward;
    return value.low === null || value.high === null ? shown(value.mean) : `${shown(value.mean)} [${shown(value.low)}, ${shown(value.high)}]`;
  };
  return `test split (${test.tasks} tasks, 95% intervals): v${incumbentVersion} ${interval(test.incumbent)}, ${deployedVersion ? `v${deployedVersion}` : "candidate"} ${interval(test.deployed)}, difference ${interval(test.difference, true)}`;
}

function formatPercent(value: number): string {
  return `${Number((value * 100).toFixed(1))}%`;
}

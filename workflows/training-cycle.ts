import { ActivityFailure, ApplicationFailure, CancellationScope, defineQuery, isCancellation, setHandler, workflowInfo } from "@temporalio/workflow";
import { defineSearchAttributeKey } from "@temporalio/common";
import type { PromptRef } from "../activities/cycle-activities.ts";
import { beamSearch, bestFirst } from "./beam-search.ts";
import { cycleActivities } from "./cycle-activities-proxies.ts";
import type { RolloutPhase } from "../store/schema.ts";
import type { ContenderScore, CycleInput, CycleProgress, CycleResult } from "./types.ts";
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
  const { bookkeeping, agentBatches, scoring, preflight } = activities;

  const state: CycleProgress = { cycleId, agent: input.agent, phase: "starting", progress: { done: 0, total: 0 } };
  setHandler(progressQuery, () => state);
  const enter = async (phase: CycleProgress["phase"], total: number) => {
    state.phase = phase;
    state.progress = { done: 0, total };
    await bookkeeping.recordCycle({ cycleId, progress: state });
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

  const runBatches = async (jobs: { prompt: PromptRef; taskIds: string[] }[], phase: RolloutPhase) => {
    const batches = jobs.flatMap((job) => chunk(job.taskIds, settings.batchSize).map((taskIds) => ({ prompt: job.prompt, taskIds })));
    await inParallel(batches, settings.parallelBatches, async (batch) => {
      await agentBatches.runAgentBatch({ cycleId, agent: input.agent, dataset, phase, prompt: batch.prompt, taskIds: batch.taskIds, concurrency: settings.concurrency });
      state.progress.done += batch.taskIds.length;
    });
  };

  try {
    // A model that does not load or answer fails the cycle now, with its error, not after every run failed.
    const probeTask = begin.trainTaskIds[0] ?? begin.devTaskIds[0] ?? begin.validationTaskIds[0];
    if (probeTask) await preflight.checkAgentRuns({ agent: input.agent, dataset, taskId: probeTask, incumbentVersion });
    // Live traffic already happened: its rollouts were scored when the window was taken.
    if (collected === "cycle") {
      await enter("collect", begin.trainTaskIds.length);
      await runBatches([{ prompt: { version: incumbentVersion }, taskIds: begin.trainTaskIds }], "collect");
      await enter("evaluate", begin.trainTaskIds.length);
      await scoring.scoreRollouts({ cycleId, dataset, phase: "collect" });
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
      await scoring.scoreRollouts({ cycleId, dataset, phase: "search" });
    }
    // Traffic: the incumbent's search rollouts above, all on the dev tasks. A cycle: its collect rollouts on them.
    const [incumbentOnDev] = await bookkeeping.summarizeContenders({ cycleId, agent: input.agent, phase: collected === "traffic" ? "search" : "collect", contenders: [INCUMBENT], taskIds: devTaskIds });
    const { rounds, finalists } = await beamSearch({
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
    await enter("validate", begin.validationTaskIds.length * contenders.length);
    await runBatches(
      contenders.map((contender) => ({ prompt: contender.prompt, taskIds: begin.validationTaskIds })),
      "validate",
    );
    await scoring.scoreRollouts({ cycleId, dataset, phase: "validate" });
    const scores = await bookkeeping.summarizeContenders({ cycleId, agent: input.agent, phase: "validate", contenders: contenders.map((c) => c.name) });
    failIfEveryRunFailed("validate", scores);
    const baseline = scores[0]!;
    const best = bestFirst(scores.slice(1))[0]!;

    await enter("deploy", 1);
    const scoreLine = `baseline ${formatReward(baseline.meanReward)}, best candidate ${best.contender} ${formatReward(best.meanReward)}, margin ${settings.margin}`;
    // A tie is not an improvement: the candidate must beat the incumbent by more than the margin.
    if (best.meanReward <= baseline.meanReward + settings.margin) {
      return await finish({ outcome: "kept", detail: `kept v${incumbentVersion}: ${scoreLine}`, incumbentVersion, deployedVersion: null, baseline, best, collect, search });
    }
    const deployed = await bookkeeping.deployCandidate({
      cycleId,
      agent: input.agent,
      candidateId: best.contender,
      incumbentVersion,
      metrics: { validation: best, baseline, margin: settings.margin, cycleId, algorithm: settings.optimizer.algorithm, rounds: rounds.length },
    });
    return await finish({ outcome: "deployed", detail: `deployed v${deployed.version} (from v${incumbentVersion}): ${scoreLine}`, incumbentVersion, deployedVersion: deployed.version, baseline, best, collect, search });
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

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}

export async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

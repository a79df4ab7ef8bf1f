import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from "@temporalio/workflow";
import type { createCycleActivities, PromptRef } from "../activities/cycle-activities.ts";
import type { ContenderScore, CycleInput, CycleProgress, CycleResult } from "./types.ts";
import { PROGRESS_QUERY } from "./types.ts";

type Activities = ReturnType<typeof createCycleActivities>;

/** Short store operations: retried freely, they are idempotent. */
const bookkeeping = proxyActivities<Activities>({
  startToCloseTimeout: "1 minute",
  retry: { initialInterval: "1 second", maximumInterval: "30 seconds", maximumAttempts: 10 },
});

export const progressQuery = defineQuery<CycleProgress>(PROGRESS_QUERY);

/**
 * One training cycle for one agent: collect -> evaluate -> train -> validate -> deploy.
 * Every side effect is an activity; this function only decides, so a cycle interrupted anywhere
 * (worker, Python child or Temporal server killed) resumes where it was.
 */
export async function trainingCycle(input: CycleInput): Promise<CycleResult> {
  const cycleId = workflowInfo().workflowId;
  const { settings } = input;
  const agentBatches = proxyActivities<Activities>({
    startToCloseTimeout: `${settings.batchTimeoutMinutes} minutes`,
    heartbeatTimeout: `${settings.heartbeatTimeoutSeconds} seconds`,
    retry: { initialInterval: "2 seconds", maximumInterval: "1 minute", maximumAttempts: 5 },
  });
  const optimizer = proxyActivities<Activities>({
    startToCloseTimeout: `${settings.optimizer.timeoutMinutes + 1} minutes`,
    heartbeatTimeout: `${settings.heartbeatTimeoutSeconds} seconds`,
    // A crash or a hang may pass; bad input and contract violations are non-retryable failures.
    retry: { initialInterval: "2 seconds", maximumInterval: "30 seconds", maximumAttempts: 3 },
    cancellationType: "WAIT_CANCELLATION_COMPLETED",
  });

  const state: CycleProgress = { cycleId, agent: input.agent, phase: "starting", progress: { done: 0, total: 0 } };
  setHandler(progressQuery, () => state);
  const enter = async (phase: CycleProgress["phase"], total: number) => {
    state.phase = phase;
    state.progress = { done: 0, total };
    await bookkeeping.recordCycle({ cycleId, progress: state });
  };

  const begin = await bookkeeping.beginCycle({ cycleId, agent: input.agent, dataset: input.dataset, trigger: input.trigger });
  if (begin.status === "busy") {
    state.phase = "done";
    return { cycleId, agent: input.agent, outcome: "skipped", detail: `cycle ${begin.holder} is already running for ${input.agent}`, incumbentVersion: null, deployedVersion: null };
  }
  const incumbentVersion = begin.incumbentVersion;
  state.incumbentVersion = incumbentVersion;

  const runBatches = async (jobs: { prompt: PromptRef; taskIds: string[] }[], phase: "collect" | "validate") => {
    const batches = jobs.flatMap((job) => chunk(job.taskIds, settings.batchSize).map((taskIds) => ({ prompt: job.prompt, taskIds })));
    await inParallel(batches, settings.parallelBatches, async (batch) => {
      await agentBatches.runAgentBatch({ cycleId, agent: input.agent, dataset: input.dataset, phase, prompt: batch.prompt, taskIds: batch.taskIds, concurrency: settings.concurrency });
      state.progress.done += batch.taskIds.length;
    });
  };

  try {
    await enter("collect", begin.trainTaskIds.length);
    await runBatches([{ prompt: { version: incumbentVersion }, taskIds: begin.trainTaskIds }], "collect");

    await enter("evaluate", begin.trainTaskIds.length);
    await bookkeeping.scoreRollouts({ cycleId, dataset: input.dataset, phase: "collect" });
    const [collected] = await bookkeeping.summarizeContenders({ cycleId, phase: "collect", contenders: ["incumbent"] });

    await enter("train", 1);
    const proposal = await optimizer.proposeCandidates({
      cycleId,
      agent: input.agent,
      dataset: input.dataset,
      incumbentVersion,
      round: 1,
      optimizer: settings.optimizer,
    });
    state.candidates = proposal.candidateIds;
    const collect = { rollouts: collected!.rollouts, failed: collected!.failed, meanReward: collected!.meanReward };
    if (proposal.candidateIds.length === 0) {
      return await finish({ outcome: "kept", detail: `kept v${incumbentVersion}: the optimizer proposed no candidates`, incumbentVersion, deployedVersion: null, collect });
    }

    const contenders: { name: string; prompt: PromptRef }[] = [
      { name: "incumbent", prompt: { version: incumbentVersion } },
      ...proposal.candidateIds.map((id) => ({ name: id, prompt: { candidateId: id } })),
    ];
    await enter("validate", begin.validationTaskIds.length * contenders.length);
    await runBatches(
      contenders.map((contender) => ({ prompt: contender.prompt, taskIds: begin.validationTaskIds })),
      "validate",
    );
    await bookkeeping.scoreRollouts({ cycleId, dataset: input.dataset, phase: "validate" });
    const scores = await bookkeeping.summarizeContenders({ cycleId, phase: "validate", contenders: contenders.map((c) => c.name) });
    const baseline = scores[0]!;
    const best = bestCandidate(scores.slice(1));

    await enter("deploy", 1);
    const scoreLine = `baseline ${formatReward(baseline.meanReward)}, best candidate ${best.contender} ${formatReward(best.meanReward)}, margin ${settings.margin}`;
    if (best.meanReward < baseline.meanReward + settings.margin) {
      return await finish({ outcome: "kept", detail: `kept v${incumbentVersion}: ${scoreLine}`, incumbentVersion, deployedVersion: null, baseline, best, collect });
    }
    const deployed = await bookkeeping.deployCandidate({
      cycleId,
      agent: input.agent,
      candidateId: best.contender,
      incumbentVersion,
      metrics: { validation: best, baseline, margin: settings.margin, cycleId },
    });
    return await finish({ outcome: "deployed", detail: `deployed v${deployed.version} (from v${incumbentVersion}): ${scoreLine}`, incumbentVersion, deployedVersion: deployed.version, baseline, best, collect });
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

function bestCandidate(scores: ContenderScore[]): ContenderScore {
  // Highest mean reward; ties go to the earlier candidate, so the choice is deterministic.
  return scores.reduce((best, score) => (score.meanReward > best.meanReward ? score : best));
}

function describeFailure(error: unknown): string {
  if (error instanceof ActivityFailure && error.cause) return describeFailure(error.cause);
  if (error instanceof ApplicationFailure) return `${error.type ?? "Error"}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

function formatReward(value: number): string {
  return value.toFixed(3);
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}

async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

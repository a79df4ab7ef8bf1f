import { CancellationScope, continueAsNew, defineQuery, proxyActivities, setHandler, sleep, workflowInfo } from "@temporalio/workflow";
import type { createCanaryActivities } from "../activities/canary-activities.ts";
import { type CanaryGuardInput, type CanaryGuardResult, type CanaryGuardState, GUARD_STATE_QUERY } from "./types.ts";

type Activities = ReturnType<typeof createCanaryActivities>;

export const guardStateQuery = defineQuery<CanaryGuardState>(GUARD_STATE_QUERY);

/** History stays small: a long canary starts afresh (same id, state carried over) after this many looks or waits. */
const ROUNDS_PER_RUN = 500;

/**
 * One canary's guard. It waits for the canary arm to reach the next look's rollout count (an activity
 * that polls the store and heartbeats), looks (judges a sample of both arms, computes the always-valid
 * intervals, records them with the canary), and promotes or rolls back as soon as a look decides, each
 * decision one compare-and-set label move with its audit event (`actor: guard:<id>`). A timer of
 * `maxDuration` ends it either way. A person ending the canary first (`agl canary promote|abort`) ends
 * the guard at its next wait. Every step is an activity and every decision idempotent, so a worker or
 * server restart anywhere changes nothing.
 */
export async function canaryGuard(input: CanaryGuardInput): Promise<CanaryGuardResult> {
  const { canaryId, settings } = input;
  const startedAtMs = input.startedAtMs ?? workflowInfo().startTime.getTime();
  const state: CanaryGuardState = { canaryId, phase: "watching", looks: input.looks ?? 0, nextLookAt: input.nextLookAt ?? settings.minRollouts, lastReason: null };
  setHandler(guardStateQuery, () => state);

  const waiting = proxyActivities<Activities>({
    startToCloseTimeout: "5 minutes",
    heartbeatTimeout: `${settings.heartbeatTimeoutSeconds} seconds`,
    // No attempt limit: a store outage is waited out, the guard must outlive it.
    retry: { initialInterval: "1 second", maximumInterval: "1 minute" },
  });
  const looking = proxyActivities<Activities>({
    // Judging a sample may call an LLM per rollout.
    startToCloseTimeout: "10 minutes",
    heartbeatTimeout: `${settings.heartbeatTimeoutSeconds} seconds`,
    retry: { initialInterval: "1 second", maximumInterval: "1 minute" },
  });

  const conclude = async (outcome: "promoted" | "rolled_back", reason: string): Promise<CanaryGuardResult> => {
    state.phase = "deciding";
    const decided = await looking.concludeCanary({ canaryId, outcome, reason });
    state.phase = "done";
    return { canaryId, outcome: decided.outcome, decidedBy: decided.decidedBy, reason: decided.reason, looks: state.looks };
  };

  const watch = async (): Promise<CanaryGuardResult | "continue"> => {
    for (let round = 0; round < ROUNDS_PER_RUN; round++) {
      const evidence = await waiting.awaitCanaryEvidence({ canaryId, canaryRollouts: state.nextLookAt });
      if (evidence.status !== "running") {
        state.phase = "done";
        return { canaryId, outcome: evidence.status, decidedBy: evidence.decidedBy ?? "unknown", reason: evidence.reason ?? "", looks: state.looks };
      }
      if (!evidence.ready) continue;
      const look = await looking.lookAtCanary({ canaryId, look: ++state.looks });
      state.lastReason = look.reason;
      if (look.decision !== "continue") return conclude(look.decision === "promote" ? "promoted" : "rolled_back", look.reason);
      state.nextLookAt = look.canaryRollouts + settings.lookEvery;
    }
    return "continue";
  };

  const remainingMs = Math.max(0, startedAtMs + settings.maxDurationMs - Date.now());
  const scope = new CancellationScope();
  const watching = scope.run(watch);
  const timedOut = sleep(remainingMs).then(() => "timeout" as const);
  const first = await Promise.race([watching, timedOut]);
  if (first === "continue") {
    return continueAsNew<typeof canaryGuard>({ ...input, startedAtMs, looks: state.looks, nextLookAt: state.nextLookAt });
  }
  if (first !== "timeout") return first;
  scope.cancel();
  await watching.catch(() => undefined);
  // Time is up: one last look decides between promoting (if the evidence says so by now) and rolling back.
  const last = await looking.lookAtCanary({ canaryId, look: ++state.looks });
  state.lastReason = last.reason;
  const hours = settings.maxDurationMs / 3_600_000;
  const limit = hours >= 1 ? `${Number(hours.toFixed(2))} h` : `${Math.round(settings.maxDurationMs / 1000)} s`;
  if (last.decision === "promote") return conclude("promoted", last.reason);
  return conclude("rolled_back", last.decision === "rollback" ? last.reason : `maxDuration (${limit}) reached without a decision, production stays; ${last.reason}`);
}

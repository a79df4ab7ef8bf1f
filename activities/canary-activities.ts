import { setTimeout as sleep } from "node:timers/promises";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { canaryEvidence, lookJson } from "../runtime/canary-evidence.ts";
import { computedScorer, scoringPlan } from "../scorers/registry.ts";
import { JUDGE } from "../scorers/judge.ts";
import type { Canary, CanaryOutcome } from "../store/canaries.ts";
import { ConflictError } from "../store/errors.ts";
import type { GuardLook } from "../stats/canary-guard.ts";
import { HEARTBEAT_EVERY_MS } from "./agent-batch.ts";
import { type ActivityDependencies, nonRetryable, rethrowNonRetryable } from "./cycle-activities.ts";
import { addMissingRewards } from "./rewarding.ts";

/** How often a waiting guard counts the canary arm's rollouts. */
const POLL_MS = 500;
/** A wait returns after this long even without news, so the workflow's history shows the guard alive. */
const WAIT_LIMIT_MS = 60_000;
/** Rollouts the judge rates per look at most; the rest of the sample waits for the next look. */
const JUDGE_PER_LOOK = 200;

export interface CanaryEvidence {
  status: Canary["status"];
  /** The canary arm has the rollouts the next look waits for. */
  ready: boolean;
  decidedBy?: string;
  reason?: string;
}

export function guardActor(canaryId: string): string {
  return `guard:${canaryId}`;
}

/** The canary's guard, as activities: wait for evidence, look, decide. */
export function createCanaryActivities(deps: ActivityDependencies) {
  const { store, config } = deps;

  /** Returns once the canary arm has `canaryRollouts` rollouts, the canary was ended by someone else, or a minute passed. */
  async function awaitCanaryEvidence(input: { canaryId: string; canaryRollouts: number }): Promise<CanaryEvidence> {
    const context = Context.current();
    const until = Date.now() + WAIT_LIMIT_MS;
    for (;;) {
      const canary = await store.canaries.get(input.canaryId).catch(rethrowNonRetryable);
      if (canary.status !== "running") return { status: canary.status, ready: false, decidedBy: canary.decidedBy ?? "unknown", reason: canary.decisionReason ?? "" };
      if ((await store.canaries.canaryRollouts(canary)) >= input.canaryRollouts) return { status: "running", ready: true };
      if (Date.now() > until) return { status: "running", ready: false };
      context.heartbeat();
      await sleep(POLL_MS, undefined, { signal: context.cancellationSignal });
    }
  }

  /**
   * One look: the judge rates the sampled rollouts of both arms it has not rated yet, then the arms'
   * rewards, failures and latencies go through the guard's sequential tests (runtime/canary-evidence.ts).
   * The look is recorded with the canary (what `agl canary status` and the dashboard show).
   */
  async function lookAtCanary(input: { canaryId: string; look: number }): Promise<{ decision: GuardLook["decision"]; reason: string; canaryRollouts: number }> {
    const canary = await store.canaries.get(input.canaryId).catch(rethrowNonRetryable);
    const agent = nonRetryable(() => config.agents.get(canary.agent));
    const plan = nonRetryable(() => scoringPlan(agent, config.cycle.scorers));
    const { settings } = canary;
    const context = Context.current();
    const beat = setInterval(() => context.heartbeat(), HEARTBEAT_EVERY_MS);
    try {
      const sample = await store.canaries.unjudgedSample(canary, JUDGE, settings.judgeSampleRate, JUDGE_PER_LOOK);
      if (sample.length > 0) {
        const judge = nonRetryable(() => computedScorer(plan, agent, JUDGE));
        await addMissingRewards(store, await store.rollouts.getMany(sample), [judge], { expected: new Map(), context: deps.scoring, concurrency: 4 });
      }
      const { look, canaryRollouts } = await canaryEvidence(store, config, canary);
      const reason = `guard ${canary.id}, look ${input.look}: ${look.reason}`;
      await store.canaries.recordState(canary.id, { look: input.look, at: new Date().toISOString(), reason, ...lookJson(canary, look) });
      return { decision: look.decision, reason, canaryRollouts };
    } finally {
      clearInterval(beat);
    }
  }

  /**
   * Promotes or rolls back as the guard (`guard:<id>`), one compare-and-set with its audit event. A
   * canary someone already ended keeps their decision; a promotion that finds `production` moved
   * meanwhile rolls the canary back instead (its comparison no longer holds).
   */
  async function concludeCanary(input: { canaryId: string; outcome: CanaryOutcome; reason: string }): Promise<{ outcome: CanaryOutcome; decidedBy: string; reason: string }> {
    const actor = guardActor(input.canaryId);
    try {
      const { canary } = await store.canaries.conclude({ id: input.canaryId, outcome: input.outcome, actor, reason: input.reason }).catch(rethrowNonRetryable);
      return { outcome: canary.status as CanaryOutcome, decidedBy: canary.decidedBy!, reason: canary.decisionReason! };
    } catch (error) {
      if (!(error instanceof ConflictError) || input.outcome !== "promoted") throw error instanceof ConflictError ? ApplicationFailure.nonRetryable(error.message, error.name) : error;
      const reason = `${error.message.replace(/ Nothing was changed\.$/, "")}: the canary was compared with a production that is gone, so it is rolled back. ${input.reason}`;
      const { canary } = await store.canaries.conclude({ id: input.canaryId, outcome: "rolled_back", actor, reason });
      return { outcome: canary.status as CanaryOutcome, decidedBy: canary.decidedBy!, reason: canary.decisionReason! };
    }
  }

  return { awaitCanaryEvidence, lookAtCanary, concludeCanary };
}

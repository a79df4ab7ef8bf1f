import type { LoadedConfig } from "../config/load.ts";
import { PROXY } from "../scorers/proxy-metrics.ts";
import { HUMAN } from "../scorers/human-feedback.ts";
import { JUDGE } from "../scorers/judge.ts";
import { rolloutReward, scoringPlan } from "../scorers/registry.ts";
import { type Arm, ARMS, type Canary } from "../store/canaries.ts";
import type { Store } from "../store/index.ts";
import { type GuardLook, guardLook } from "../stats/canary-guard.ts";
import { armSample } from "../stats/sequential.ts";

/**
 * What the canary's arms show now, through the guard's tests: each rewarded rollout's reward is the
 * agent's weighted mean of its scorers, with human feedback, proxy outcomes and the judge counting at
 * weight 1 where the agent does not weigh them (the live signals a canary has). Read-only: the guard
 * (which judges a sample first) and the dashboard both use it.
 */
export async function canaryEvidence(store: Store, config: Pick<LoadedConfig, "agents" | "cycle">, canary: Canary): Promise<{ look: GuardLook; canaryRollouts: number }> {
  const agent = config.agents.get(canary.agent);
  const weights = { [HUMAN]: 1, [PROXY]: 1, [JUDGE]: 1, ...scoringPlan(agent, config.cycle.scorers).weights };
  const byRollout = Map.groupBy(await store.canaries.armRewards(canary), (reward) => reward.rolloutId);
  const rewards: Record<Arm, number[]> = { production: [], canary: [] };
  for (const group of byRollout.values()) {
    const reward = rolloutReward(weights, group);
    if (reward !== undefined) rewards[group[0]!.arm].push(reward);
  }
  const counts = await store.canaries.armCounts(canary, 1 + canary.settings.latencyTolerance);
  const evidence = (arm: Arm) => ({ rewards: armSample(rewards[arm]), rollouts: counts[arm].rollouts, failed: counts[arm].failed, slow: counts[arm].slow, p90LatencyMs: counts[arm].p90LatencyMs });
  return { look: guardLook(evidence("production"), evidence("canary"), canary.settings), canaryRollouts: counts.canary.rollouts };
}

/** A look as the store keeps it with the canary and the dashboard shows it: each arm with its version. */
export function lookJson(canary: Canary, look: GuardLook) {
  return {
    decision: look.decision,
    test: look.test,
    alpha: look.alpha,
    arms: Object.fromEntries(ARMS.map((arm) => [arm, { version: arm === "canary" ? canary.canaryVersion : canary.baselineVersion, ...look.arms[arm] }])),
    reward: look.reward,
    failureRate: look.failureRate,
    slowShare: look.slowShare,
  };
}

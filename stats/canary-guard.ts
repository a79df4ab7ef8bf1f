import { type Interval, tQuantile } from "./intervals.ts";
import { type ArmSample, mixtureInterval, SEQUENTIAL_TEST, type SequentialInterval } from "./sequential.ts";

/**
 * The canary guard's rule at one look, a pure function of what the arms have shown so far. Three
 * always-valid tests share the error budget alpha (Bonferroni), so the chance that any look of the
 * canary's life wrongly promotes or rolls back, when the arms do not differ, stays at most alpha:
 * - reward, two-sided at alpha/2: the canary's mean reward significantly above production's promotes,
 *   significantly below rolls back;
 * - failure rate, one-sided at alpha/4: significantly more failed runs on the canary rolls back;
 * - latency, one-sided at alpha/4: a significantly larger share of canary runs slower than production's
 *   p90 × (1 + tolerance) rolls back (the p90 guardrail, tested as a share so it stays sequentially valid).
 */
export type GuardDecision = "promote" | "rollback" | "continue";

/** The mixture's scale per metric: the size of difference each test is most sensitive to. */
export const MIXTURE_SCALE = { reward: 0.25, failureRate: 0.1, slowShare: 0.1 } as const;

export interface ArmEvidence {
  /** Over the rewarded rollouts, each one's reward (the agent's weighted mean of its scorers). */
  rewards: ArmSample;
  rollouts: number;
  failed: number;
  /** Rollouts slower than production's p90 × (1 + tolerance). */
  slow: number;
  p90LatencyMs: number | null;
}

export interface GuardLook {
  decision: GuardDecision;
  /** One line with the numbers: what the audit event and the dashboard show. */
  reason: string;
  test: string;
  alpha: number;
  arms: Record<"production" | "canary", { rollouts: number; rewarded: number; reward: Interval; failureRate: number; p90LatencyMs: number | null; slowShare: number }>;
  /** Canary minus production, always-valid intervals; null until both arms have minRollouts. */
  reward: SequentialInterval | null;
  failureRate: SequentialInterval | null;
  slowShare: SequentialInterval | null;
}

export function guardLook(production: ArmEvidence, canary: ArmEvidence, settings: { minRollouts: number; alpha: number; latencyTolerance: number }): GuardLook {
  const { alpha, minRollouts } = settings;
  const arms = {
    production: armSummary(production),
    canary: armSummary(canary),
  };
  const base = { test: SEQUENTIAL_TEST, alpha, arms };
  const enoughRuns = production.rollouts >= minRollouts && canary.rollouts >= minRollouts;
  const enoughRewards = production.rewards.n >= minRollouts && canary.rewards.n >= minRollouts;
  const failureRate = enoughRuns ? mixtureInterval(share(production.failed, production.rollouts), share(canary.failed, canary.rollouts), alpha / 4, MIXTURE_SCALE.failureRate) : null;
  const slowShare = enoughRuns ? mixtureInterval(share(production.slow, production.rollouts), share(canary.slow, canary.rollouts), alpha / 4, MIXTURE_SCALE.slowShare) : null;
  const reward = enoughRewards ? mixtureInterval(production.rewards, canary.rewards, alpha / 2, MIXTURE_SCALE.reward) : null;
  const evidence = { ...base, reward, failureRate, slowShare };
  const level = (part: number) => `always-valid ${formatPercent(1 - part)} interval`;
  const arm = (name: "production" | "canary") => `${name} ${formatInterval(arms[name].reward)} (n=${arms[name].rewarded})`;

  if (failureRate && failureRate.low > 0) {
    return {
      ...evidence,
      decision: "rollback",
      reason: `failure rate: canary ${formatPercent(arms.canary.failureRate)} of ${canary.rollouts} vs production ${formatPercent(arms.production.failureRate)} of ${production.rollouts}, difference ${signed(failureRate.difference)}, ${level(alpha / 4)} [${signed(failureRate.low)}, ${signed(failureRate.high)}] above 0 (${SEQUENTIAL_TEST}, alpha ${alpha})`,
    };
  }
  if (slowShare && slowShare.low > 0) {
    return {
      ...evidence,
      decision: "rollback",
      reason: `latency: p90 canary ${formatMs(canary.p90LatencyMs)} vs production ${formatMs(production.p90LatencyMs)}; runs slower than ${formatMs(production.p90LatencyMs === null ? null : production.p90LatencyMs * (1 + settings.latencyTolerance))} canary ${formatPercent(arms.canary.slowShare)} vs production ${formatPercent(arms.production.slowShare)}, difference ${signed(slowShare.difference)}, ${level(alpha / 4)} [${signed(slowShare.low)}, ${signed(slowShare.high)}] above 0 (${SEQUENTIAL_TEST}, alpha ${alpha})`,
    };
  }
  if (reward && (reward.high < 0 || reward.low > 0)) {
    const better = reward.low > 0;
    return {
      ...evidence,
      decision: better ? "promote" : "rollback",
      reason: `reward: ${arm("canary")} vs ${arm("production")}, difference ${signed(reward.difference)}, ${level(alpha / 2)} [${signed(reward.low)}, ${signed(reward.high)}] ${better ? "above" : "below"} 0 (${SEQUENTIAL_TEST}, alpha ${alpha})`,
    };
  }
  const waiting = !enoughRuns || !enoughRewards
    ? `waiting for ${minRollouts} rewarded rollouts per arm: production ${production.rewards.n}, canary ${canary.rewards.n}`
    : `reward: ${arm("canary")} vs ${arm("production")}, difference ${signed(reward!.difference)}, ${level(alpha / 2)} [${signed(reward!.low)}, ${signed(reward!.high)}] holds 0 (${SEQUENTIAL_TEST}, alpha ${alpha})`;
  return { ...evidence, decision: "continue", reason: waiting };
}

function armSummary(arm: ArmEvidence) {
  return {
    rollouts: arm.rollouts,
    rewarded: arm.rewards.n,
    reward: meanInterval95(arm.rewards),
    failureRate: arm.rollouts > 0 ? arm.failed / arm.rollouts : 0,
    p90LatencyMs: arm.p90LatencyMs,
    slowShare: arm.rollouts > 0 ? arm.slow / arm.rollouts : 0,
  };
}

/** The arm's own 95 % t-interval, for display: the decision uses the always-valid interval on the difference. */
function meanInterval95(sample: ArmSample): Interval {
  if (sample.n < 2) return { n: sample.n, mean: sample.mean, low: null, high: null };
  const half = tQuantile(0.975, sample.n - 1) * Math.sqrt(sample.variance / sample.n);
  return { n: sample.n, mean: sample.mean, low: sample.mean - half, high: sample.mean + half };
}

/** A share as the sample of its 0/1 indicators. */
function share(count: number, n: number): ArmSample {
  const mean = n > 0 ? count / n : 0;
  return { n, mean, variance: n > 1 ? (mean * (1 - mean) * n) / (n - 1) : 0 };
}

function formatInterval(interval: Interval): string {
  return interval.low === null || interval.high === null ? interval.mean.toFixed(3) : `${interval.mean.toFixed(3)} [${interval.low.toFixed(3)}, ${interval.high.toFixed(3)}]`;
}

function signed(value: number): string {
  return `${value >= 0 ? "+" : ""}${value.toFixed(3)}`;
}

function formatPercent(value: number): string {
  return `${Number((value * 100).toFixed(2))}%`;
}

function formatMs(value: number | null): string {
  return value === null ? "–" : `${Math.round(value)} ms`;
}

import { describe, expect, test } from "vitest";
import { guardLook } from "../../stats/canary-guard.ts";
import { tQuantile } from "../../stats/intervals.ts";
import { type ArmSample, mixtureInterval, naiveInterval } from "../../stats/sequential.ts";

/** mulberry32: a small seeded generator, so every run of this test draws the same numbers. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Running sums of one arm: a look costs O(1), whatever the arm's size. */
class Arm {
  n = 0;
  sum = 0;
  squares = 0;
  failed = 0;
  slow = 0;
  add(reward: number, failed: boolean, slow: boolean): void {
    this.n++;
    this.sum += reward;
    this.squares += reward * reward;
    if (failed) this.failed++;
    if (slow) this.slow++;
  }
  sample(): ArmSample {
    const mean = this.n > 0 ? this.sum / this.n : 0;
    return { n: this.n, mean, variance: this.n > 1 ? (this.squares - this.n * mean * mean) / (this.n - 1) : 0 };
  }
}

const ALPHA = 0.05;
const WEIGHT = 0.2;
const MIN_ROLLOUTS = 20;
const LOOK_EVERY = 10;
const CANARY_RUNS = 600;
const SIMULATIONS = 1000;
const REWARDS = [-1, -0.5, 0, 0.5, 1];

/**
 * A canary's life under no difference at all: both arms draw rewards, failures (5 %) and slow runs (8 %)
 * from the same distributions; the guard looks every LOOK_EVERY canary runs from MIN_ROLLOUTS per arm
 * on, 59 looks in all. Returns whether any look decided anything (each decision is then a wrong one).
 */
function lifeUnderNoDifference(draw: () => number) {
  const production = new Arm();
  const canary = new Arm();
  let guard = false;
  let naive = false;
  let mixtureReward = false;
  while (canary.n < CANARY_RUNS) {
    const arm = draw() < WEIGHT ? canary : production;
    arm.add(REWARDS[Math.floor(draw() * REWARDS.length)]!, draw() < 0.05, draw() < 0.08);
    if (arm !== canary || canary.n < MIN_ROLLOUTS || production.n < MIN_ROLLOUTS || canary.n % LOOK_EVERY !== 0) continue;
    const evidence = (a: Arm) => ({ rewards: a.sample(), rollouts: a.n, failed: a.failed, slow: a.slow, p90LatencyMs: null });
    if (guardLook(evidence(production), evidence(canary), { minRollouts: MIN_ROLLOUTS, alpha: ALPHA, latencyTolerance: 0.2 }).decision !== "continue") guard = true;
    // The reward test alone, at the guard's level for it (alpha/2): always-valid against a t-test repeated at every look.
    const always = mixtureInterval(production.sample(), canary.sample(), ALPHA / 2, 0.25);
    if (always.low > 0 || always.high < 0) mixtureReward = true;
    const repeated = naiveInterval(production.sample(), canary.sample(), ALPHA / 2, tQuantile);
    if (repeated.low > 0 || repeated.high < 0) naive = true;
  }
  return { guard, naive, mixtureReward };
}

describe("the guard's sequential test stays valid under repeated looks", () => {
  test("with no difference between the arms, wrong decisions over 59 looks stay near alpha; a t-test repeated at each look errs far more often", () => {
    const draw = random(20261201);
    let guard = 0;
    let naive = 0;
    let mixtureReward = 0;
    for (let run = 0; run < SIMULATIONS; run++) {
      const life = lifeUnderNoDifference(draw);
      guard += Number(life.guard);
      naive += Number(life.naive);
      mixtureReward += Number(life.mixtureReward);
    }
    const rate = (count: number) => count / SIMULATIONS;
    // The mixture's guarantee is P(any wrong decision) ≤ alpha; with this seed it is well under it.
    expect(rate(guard)).toBeLessThanOrEqual(ALPHA);
    expect(rate(mixtureReward)).toBeLessThanOrEqual(ALPHA / 2);
    // The same reward comparison as a t-test at each look: its one-look level is alpha/2 = 2.5 %, over 59 looks many times that.
    expect(rate(naive)).toBeGreaterThan(4 * (ALPHA / 2));
    console.log(`wrong decisions over ${SIMULATIONS} canaries: guard ${rate(guard)}, mixture reward test ${rate(mixtureReward)}, repeated t-test ${rate(naive)}`);
  });

  test("a real difference is found: a worse canary is rolled back, a better one promoted, a failing one stopped by the failure guardrail", () => {
    const draw = random(7);
    const decide = (shift: number, canaryFailure: number) => {
      const production = new Arm();
      const canary = new Arm();
      for (;;) {
        const isCanary = draw() < WEIGHT;
        const arm = isCanary ? canary : production;
        const reward = Math.max(-1, Math.min(1, REWARDS[Math.floor(draw() * REWARDS.length)]! + (isCanary ? shift : 0)));
        arm.add(reward, draw() < (isCanary ? canaryFailure : 0.02), false);
        if (canary.n < MIN_ROLLOUTS || production.n < MIN_ROLLOUTS || !isCanary || canary.n % LOOK_EVERY !== 0) continue;
        const evidence = (a: Arm) => ({ rewards: a.sample(), rollouts: a.n, failed: a.failed, slow: a.slow, p90LatencyMs: null });
        const look = guardLook(evidence(production), evidence(canary), { minRollouts: MIN_ROLLOUTS, alpha: ALPHA, latencyTolerance: 0.2 });
        if (look.decision !== "continue" || canary.n >= 2_000) return { ...look, canaryRuns: canary.n };
      }
    };
    const worse = decide(-0.6, 0.02);
    expect(worse.decision).toBe("rollback");
    expect(worse.reason).toMatch(/^reward: .* below 0 \(mSPRT/);
    const better = decide(0.6, 0.02);
    expect(better.decision).toBe("promote");
    expect(better.reason).toMatch(/^reward: .* above 0 \(mSPRT/);
    const failing = decide(0, 0.4);
    expect(failing.decision).toBe("rollback");
    expect(failing.reason).toMatch(/^failure rate: /);
  });
});

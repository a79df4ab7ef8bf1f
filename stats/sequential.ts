/**
 * An always-valid comparison of two arms, for a guard that looks at live traffic again and again: the
 * mixture sequential probability ratio test (mSPRT) with a normal mixture over the difference of means
 * (Robbins 1970; Johari, Koomen, Pekelis & Walsh, "Always Valid Inference", 2017/2022), inverted into a
 * confidence sequence (equivalently the Gaussian-mixture asymptotic confidence sequence of Waudby-Smith,
 * Arbour, Sinha, Kennedy & Ramdas, 2021).
 *
 * With Δ̂ the difference of the arms' means and v = s₁²/n₁ + s₂²/n₂ its variance, the mixture likelihood
 * ratio against Δ = θ is Λ(θ) = √(v/(v+τ²)) · exp(τ²(Δ̂−θ)² / (2v(v+τ²))). Under Δ = θ it is (asymptotically,
 * with a fixed allocation between the arms) a nonnegative martingale with mean 1, so by Ville's inequality
 * P(Λ ever reaches 1/α) ≤ α, however often and whenever one looks. The θ with Λ(θ) < 1/α form the
 * confidence sequence Δ̂ ± √(v(v+τ²)/τ² · (2 ln(1/α) + ln(1 + τ²/v))). A naive t-interval at every look
 * has no such guarantee: its error rate grows with the number of looks.
 */
export const SEQUENTIAL_TEST = "mSPRT (normal-mixture confidence sequence)";

/** Mean and variance of one arm's samples. */
export interface ArmSample {
  n: number;
  mean: number;
  /** Sample variance (n − 1 in the denominator); 0 below two samples. */
  variance: number;
}

export interface SequentialInterval {
  /** `b` minus `a`. */
  difference: number;
  low: number;
  high: number;
}

/** Running sums, so a simulation (or a stream) adds a sample in O(1). */
export function armSample(values: readonly number[]): ArmSample {
  const n = values.length;
  if (n === 0) return { n, mean: 0, variance: 0 };
  const mean = values.reduce((sum, value) => sum + value, 0) / n;
  const variance = n < 2 ? 0 : values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (n - 1);
  return { n, mean, variance };
}

/**
 * The always-valid (1 − alpha) confidence sequence on mean(b) − mean(a) at this look. `tau` is the
 * mixture's scale: the size of difference the test is most sensitive to, in the samples' units. With no
 * spread at all (every sample alike) a tiny variance floor keeps it finite.
 */
export function mixtureInterval(a: ArmSample, b: ArmSample, alpha: number, tau: number): SequentialInterval {
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be in (0, 1), got ${alpha}`);
  const difference = b.mean - a.mean;
  const v = Math.max(a.variance / Math.max(a.n, 1) + b.variance / Math.max(b.n, 1), 1e-12);
  const t2 = tau * tau;
  const half = Math.sqrt(((v * (v + t2)) / t2) * (2 * Math.log(1 / alpha) + Math.log(1 + t2 / v)));
  return { difference, low: difference - half, high: difference + half };
}

/** Welch's two-sided t-interval at 1 − alpha, valid at one pre-planned look only: what the mixture replaces. */
export function naiveInterval(a: ArmSample, b: ArmSample, alpha: number, quantile: (p: number, df: number) => number): SequentialInterval {
  const difference = b.mean - a.mean;
  const va = a.variance / a.n;
  const vb = b.variance / b.n;
  const se = Math.sqrt(va + vb);
  const df = (va + vb) ** 2 / ((va * va) / Math.max(a.n - 1, 1) + (vb * vb) / Math.max(b.n - 1, 1)) || 1;
  const half = quantile(1 - alpha / 2, Math.max(df, 1)) * se;
  return { difference, low: difference - half, high: difference + half };
}

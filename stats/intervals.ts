/**
 * Intervals on means and paired differences, the statistics every judgement of a prompt rests on: the
 * cycle's gate, `agl test`, the post-deploy check on the test split and `agl analyze`. Student's t, since
 * rewards are bounded and the samples are tasks (tens to hundreds); quantiles to about 1e-3.
 */

export interface Interval {
  n: number;
  mean: number;
  /** Null below two samples: one value says nothing about its spread. */
  low: number | null;
  high: number | null;
}

/** The standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile needs 0 < p < 1, got ${p}`);
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - low) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/**
 * Student's t quantile: exact for 1 and 2 degrees of freedom, else the Cornish-Fisher expansion around the
 * normal quantile (four terms: within 0.005 of the true value from 4 degrees of freedom on, for p ≤ 0.99; the
 * samples judged here are tens of tasks).
 */
export function tQuantile(p: number, degreesOfFreedom: number): number {
  if (!(degreesOfFreedom >= 1)) throw new RangeError(`tQuantile needs at least 1 degree of freedom, got ${degreesOfFreedom}`);
  if (degreesOfFreedom === 1) return Math.tan(Math.PI * (p - 0.5));
  if (degreesOfFreedom === 2) return (2 * p - 1) / Math.sqrt(2 * p * (1 - p));
  const z = normalQuantile(p);
  const v = degreesOfFreedom;
  const z2 = z * z;
  return (
    z +
    (z * (z2 + 1)) / (4 * v) +
    (z * ((5 * z2 + 16) * z2 + 3)) / (96 * v ** 2) +
    (z * (((3 * z2 + 19) * z2 + 17) * z2 - 15)) / (384 * v ** 3) +
    (z * ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945)) / (92160 * v ** 4)
  );
}

export function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

export function standardDeviation(values: readonly number[]): number {
  const average = mean(values);
  return Math.sqrt(values.reduce((sum, value) => sum + (value - average) ** 2, 0) / (values.length - 1));
}

/** A two-sided interval on the mean at `confidence` (default 95 %). */
export function meanInterval(values: readonly number[], confidence = 0.95): Interval {
  const n = values.length;
  if (n === 0) return { n, mean: 0, low: null, high: null };
  const average = mean(values);
  if (n < 2) return { n, mean: average, low: null, high: null };
  const half = (tQuantile(1 - (1 - confidence) / 2, n - 1) * standardDeviation(values)) / Math.sqrt(n);
  return { n, mean: average, low: average - half, high: average + half };
}

/** The lower end of a one-sided interval on the mean at `confidence`: the mean is above it with that confidence. Null below two samples. */
export function lowerBound(values: readonly number[], confidence: number): number | null {
  const n = values.length;
  if (n < 2) return null;
  return mean(values) - (tQuantile(confidence, n - 1) * standardDeviation(values)) / Math.sqrt(n);
}

/** Per task, `b` minus `a`, over the tasks both have: the paired differences a comparison on the same tasks rests on. */
export function pairedDifferences(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): number[] {
  return [...b].flatMap(([task, value]) => (a.has(task) ? [value - a.get(task)!] : []));
}

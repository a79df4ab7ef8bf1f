import { createHash } from "node:crypto";

/** A resource's running canary as the resources API describes it: the version on the `canary` label and its share of keyed traffic. */
export interface CanarySplit {
  version: number;
  /** Percent of keys, (0, 100]. */
  weight: number;
}

export type Arm = "production" | "canary";

/**
 * Which arm serves `key`: a hash of (resource, canary version, key) placed in [0, 100), the canary below
 * its weight. The same on the server and in every client, so a user keeps one version for the canary's
 * whole life; a new canary (another version) draws its users afresh. Without a key or a canary, production.
 */
export function assignArm(resource: string, split: CanarySplit | null, key: string | undefined): Arm {
  if (!split || key === undefined) return "production";
  const digest = createHash("sha256").update(`${resource}\u0000${split.version}\u0000${key}`).digest();
  return (digest.readUInt32BE(0) / 2 ** 32) * 100 < split.weight ? "canary" : "production";
}

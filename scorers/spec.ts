import type { RewardScorer } from "./types.ts";

/** Recognises a scorer spec made by another copy of this package too (a user's project may resolve its own). */
export const SCORER_SPEC = Symbol.for("agl.scorer-spec");

/** What a scorer may read of the agent it scores, once the agent is defined. */
export interface AgentShape {
  id: string;
  description: string;
  outputKind: "object" | "text";
  outputJsonSchema: Record<string, unknown> | null;
  labels: Record<string, readonly string[]>;
  message(input: Record<string, unknown>): string;
  /** Label field -> `label -> description`, from the seed prompt's label lines (the judge's default rubric). */
  labelDescriptions: Record<string, Record<string, string>>;
}

export type PostedScorer = { posted: "human" | "proxy"; event?: string };

/**
 * A scorer an agent lists: built-in factories (`groundTruth()`, `judge()`, `human()`, `proxy()`) and
 * wrapped Mastra scorers all make one. `build` runs once the agent is known, so a factory can take its
 * defaults from the agent's output schema.
 */
export interface ScorerSpec {
  readonly [SCORER_SPEC]: true;
  readonly id: string;
  /** Its share in a rollout's reward, relative to the agent's other scorers (default 1). */
  readonly weight: number;
  build(agent: AgentShape): RewardScorer | PostedScorer;
  /** Output fields whose ground truth may list several acceptable answers (a one-of matcher). */
  readonly alternativesFields?: readonly string[];
}

export function isScorerSpec(value: unknown): value is ScorerSpec {
  return typeof value === "object" && value !== null && (value as Record<PropertyKey, unknown>)[SCORER_SPEC] === true;
}

export function scorerSpec(spec: Omit<ScorerSpec, typeof SCORER_SPEC | "weight"> & { weight?: number | undefined }): ScorerSpec {
  const weight = spec.weight ?? 1;
  if (!(Number.isFinite(weight) && weight > 0)) throw new Error(`scorer "${spec.id}": weight must be a number > 0 (got ${String(spec.weight)})`);
  return Object.freeze({ ...spec, weight, [SCORER_SPEC]: true as const });
}

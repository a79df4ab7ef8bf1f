import type { LanguageModelV2 } from "@ai-sdk/provider";
import { createLanguageModel } from "../agents/models/index.ts";
import type { AgentDefinition, WeightedScorer } from "../agents/types.ts";
import type { LoadedConfig } from "../config/load.ts";
import { EVENT_NAME } from "../config/schema.ts";
import { InvalidInputError, NotFoundError } from "../store/errors.ts";
import { fakeJudgeModel } from "./fake-judge-model.ts";
import { GROUND_TRUTH, groundTruth } from "./ground-truth.ts";
import { HUMAN } from "./human-feedback.ts";
import { JUDGE, judge } from "./judge.ts";
import { PROXY } from "./proxy-metrics.ts";
import { isScorerSpec, type ScorerSpec, scorerSpec } from "./spec.ts";
import type { RewardScorer } from "./types.ts";

export { GROUND_TRUTH };

/** Human feedback (`agl feedback`, `POST /v1/feedback`) counts toward the agent's reward with this weight. */
export function human(options: { weight?: number } = {}): ScorerSpec {
  return scorerSpec({ id: HUMAN, weight: options.weight, build: () => ({ posted: "human" }) });
}

/** Proxy outcomes (`POST /v1/outcomes`): every configured event, or one. */
export function proxy(options: { event?: string; weight?: number } = {}): ScorerSpec {
  if (options.event !== undefined && !EVENT_NAME.test(options.event)) throw new Error(`proxy(): event "${options.event}" is not an event name (a letter, then letters, digits, - or _)`);
  const id = options.event ? `${PROXY}:${options.event}` : PROXY;
  return scorerSpec({ id, weight: options.weight, build: () => ({ posted: "proxy", ...(options.event ? { event: options.event } : {}) }) });
}

/** The part of a Mastra scorer (`createScorer(...)`) the loop calls. */
interface MastraScorerLike {
  id: string;
  description?: string;
  run(run: { input?: unknown; output: unknown; groundTruth?: unknown; requestContext?: Record<string, unknown> }): Promise<{ score?: number; reason?: unknown; notScorable?: { reason?: string } }>;
}

export interface MastraScorerOptions {
  weight?: number;
  /** The range of the scorer's scores: Mastra's usual 0..1 (mapped to a reward of 2 × score − 1) or -1..1 as they are. */
  scale?: "0..1" | "-1..1";
}

/**
 * A user's own Mastra scorer as one of the agent's scorers. It is run with `input` = the task input,
 * `output` = the answer (the object, or the text of a free-text agent), `groundTruth` = the expected
 * fields (when the task has any) and `requestContext` = `{agent, message, toolCalls}`. A run it returns
 * `notScorable()` for stores no reward; its reason becomes the reward's reason.
 */
export function mastraScorer(scorer: MastraScorerLike, options: MastraScorerOptions = {}): ScorerSpec {
  const scale = options.scale ?? "0..1";
  return scorerSpec({
    id: scorer.id,
    weight: options.weight,
    build: (agent): RewardScorer => ({
      id: scorer.id,
      description: scorer.description ?? scorer.id,
      async score(input) {
        const answer = agent.outputKind === "text" ? (input.output?.text ?? null) : input.output;
        const result = await scorer.run({
          input: input.input,
          output: answer,
          ...(input.expected ? { groundTruth: input.expected } : {}),
          requestContext: { agent: agent.id, message: agent.message(input.input), toolCalls: input.toolCalls ?? [] },
        });
        if (result.notScorable) return undefined;
        const score = result.score;
        if (typeof score !== "number" || !Number.isFinite(score)) throw new Error(`scorer "${scorer.id}" returned no numeric score`);
        const [low, high] = scale === "0..1" ? [0, 1] : [-1, 1];
        if (score < low || score > high) throw new Error(`scorer "${scorer.id}" returned ${score}, outside its scale ${scale}`);
        const value = scale === "0..1" ? 2 * score - 1 : score;
        return { value, reason: typeof result.reason === "string" ? result.reason : `score ${score} (${scale})`, details: { score, scale } };
      },
    }),
  });
}

const BUILT_IN_IDS = `"${GROUND_TRUTH}", "${JUDGE}", "${HUMAN}", "${PROXY}" or "${PROXY}:<event>"`;

/**
 * One entry of an agent's `scorers`: a spec from a factory, `{scorer, weight}`, a Mastra scorer, or a
 * built-in's id. Throws with what is wrong otherwise.
 */
export function toScorerSpec(entry: unknown): ScorerSpec {
  if (isScorerSpec(entry)) return entry;
  if (typeof entry === "string") return builtInScorer(entry);
  if (typeof entry === "object" && entry !== null && "scorer" in entry) {
    const { scorer, weight, ...rest } = entry as { scorer: unknown; weight?: number; scale?: MastraScorerOptions["scale"] };
    if (isScorerSpec(scorer)) return scorerSpec({ ...scorer, weight: weight ?? scorer.weight });
    if (typeof scorer === "string") return scorerSpec({ ...builtInScorer(scorer), weight });
    if (isMastraScorer(scorer)) return mastraScorer(scorer, { ...rest, ...(weight !== undefined ? { weight } : {}) });
    throw new Error(`{scorer, weight}: scorer must be a built-in scorer, a Mastra scorer (createScorer) or ${BUILT_IN_IDS}`);
  }
  if (isMastraScorer(entry)) return mastraScorer(entry);
  throw new Error(`a scorer must be groundTruth(), judge(), human(), proxy(), a Mastra scorer (createScorer), {scorer, weight} or ${BUILT_IN_IDS}; got ${describe(entry)}`);
}

function builtInScorer(id: string): ScorerSpec {
  if (id === GROUND_TRUTH) return groundTruth();
  if (id === JUDGE) return judge();
  if (id === HUMAN) return human();
  if (id === PROXY) return proxy();
  if (id.startsWith(`${PROXY}:`)) return proxy({ event: id.slice(PROXY.length + 1) });
  throw new Error(`unknown scorer id "${id}" (built-in scorers: ${BUILT_IN_IDS})`);
}

function isMastraScorer(value: unknown): value is MastraScorerLike {
  return typeof value === "object" && value !== null && typeof (value as MastraScorerLike).run === "function" && typeof (value as MastraScorerLike).id === "string";
}

function describe(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? String(value);
  return `an object with keys ${Object.keys(value).join(", ") || "(none)"}`;
}

/**
 * Which rewards make a rollout's reward for one agent, with which weights, and which of them the loop
 * computes itself. The agent's own scorers by default; `cycle.scorers` (when set) picks among them and
 * the built-ins instead.
 */
export interface ScoringPlan {
  ids: string[];
  weights: Record<string, number>;
  computed: RewardScorer[];
}

export function scoringPlan(agent: AgentDefinition, configured: readonly string[] | undefined): ScoringPlan {
  const own = new Map(agent.scorers.map((scorer) => [scorer.id, scorer]));
  const chosen: WeightedScorer[] = configured
    ? configured.map((id) => {
        const existing = own.get(id);
        if (existing) return existing;
        const spec = builtInForPlan(id, agent);
        return { id, weight: spec.weight, scorer: spec.build(agentShape(agent)) };
      })
    : [...agent.scorers];
  return {
    ids: chosen.map((scorer) => scorer.id),
    weights: Object.fromEntries(chosen.map((scorer) => [scorer.id, scorer.weight])),
    computed: chosen.flatMap((scorer) => ("score" in scorer.scorer ? [scorer.scorer] : [])),
  };
}

function builtInForPlan(id: string, agent: AgentDefinition): ScorerSpec {
  try {
    return builtInScorer(id);
  } catch {
    throw new NotFoundError(`Scorer "${id}" (cycle.scorers) is neither a built-in scorer (${BUILT_IN_IDS}) nor one of agent "${agent.id}"'s: ${agent.scorers.map((scorer) => scorer.id).join(", ")}.`);
  }
}

/** The one computed scorer `id` of the plan, for `agl eval --scorer`. */
export function computedScorer(plan: ScoringPlan, agent: AgentDefinition, id: string): RewardScorer {
  const found = plan.computed.find((scorer) => scorer.id === id) ?? agent.scorers.find((scorer) => scorer.id === id && "score" in scorer.scorer)?.scorer;
  if (found && "score" in found) return found;
  // The built-in computed scorers apply to any agent, declared or not (the judge then uses its default rubric).
  if (id === GROUND_TRUTH || id === JUDGE) return (builtInScorer(id).build(agentShape(agent)) as RewardScorer);
  const computed = [...new Set([...plan.computed.map((scorer) => scorer.id), ...agent.scorers.filter((scorer) => "score" in scorer.scorer).map((scorer) => scorer.id)])];
  if (id === HUMAN || id === PROXY || id.startsWith(`${PROXY}:`)) {
    throw new InvalidInputError(
      `Scorer "${id}" is not computed: ${id === HUMAN ? "human rewards come from feedback (agl feedback, POST /v1/feedback)" : "proxy rewards come from outcome events (POST /v1/outcomes)"}. Computed scorers of ${agent.id}: ${computed.join(", ")}.`,
    );
  }
  throw new NotFoundError(`Agent "${agent.id}" has no computed scorer "${id}". Its computed scorers: ${computed.join(", ") || "(none)"}.`);
}

/** The weight a reward of `scorer` has under the plan; undefined when it does not count ("proxy" stands for every proxy event). */
export function weightOf(weights: Readonly<Record<string, number>>, scorer: string): number | undefined {
  return weights[scorer] ?? (scorer.startsWith(`${PROXY}:`) ? weights[PROXY] : undefined);
}

/** The weighted mean of a rollout's rewards that count under the plan (several of one scorer, e.g. two human ratings, are averaged first), or undefined when none does. */
export function rolloutReward(weights: Readonly<Record<string, number>>, rewards: readonly { scorer: string; value: number }[]): number | undefined {
  const byScorer = Map.groupBy(
    rewards.filter((reward) => weightOf(weights, reward.scorer) !== undefined),
    (reward) => reward.scorer,
  );
  let total = 0;
  let weightSum = 0;
  for (const [scorer, group] of byScorer) {
    const weight = weightOf(weights, scorer)!;
    total += (weight * group.reduce((sum, reward) => sum + reward.value, 0)) / group.length;
    weightSum += weight;
  }
  return weightSum > 0 ? total / weightSum : undefined;
}

/** What a scorer factory may read of a defined agent. */
export function agentShape(agent: AgentDefinition) {
  return {
    id: agent.id,
    description: agent.description,
    outputKind: agent.outputKind,
    outputJsonSchema: agent.outputJsonSchema,
    labels: agent.labels,
    message: agent.message,
    labelDescriptions: labelDescriptions(agent.labels, agent.prompt.labelComponents, agent.prompt.seed.components),
  };
}

/** Label field -> label -> its description, read from the seed prompt's `- label: description` lines. */
export function labelDescriptions(labels: Record<string, readonly string[]>, labelComponents: Record<string, string>, components: Record<string, string>): Record<string, Record<string, string>> {
  return Object.fromEntries(
    Object.keys(labels).map((field) => {
      const lines = (components[labelComponents[field] ?? ""] ?? "").split("\n");
      const described = lines.map((line) => /^\s*-\s*([^:]+?)\s*:\s*(.*)$/.exec(line)).filter((match) => match !== null);
      return [field, Object.fromEntries(described.map((match) => [match[1]!, match[2]!]))];
    }),
  );
}

/** The judge's model settings: the agent model's, with whatever `scorers.judge` sets instead. */
export function judgeModelSettings(config: Pick<LoadedConfig, "dataPath" | "model" | "scorers">): Pick<LoadedConfig, "dataPath" | "model"> {
  const judgeSettings = config.scorers.judge;
  const provider = judgeSettings.provider ?? (judgeSettings.baseUrl ? "openai-compatible" : config.model.provider);
  return {
    dataPath: config.dataPath,
    model: {
      ...config.model,
      provider,
      ...(judgeSettings.baseUrl ? { baseUrl: judgeSettings.baseUrl } : {}),
      ...(judgeSettings.model ? { name: judgeSettings.model } : {}),
      ...(judgeSettings.apiKey ? { apiKey: judgeSettings.apiKey } : {}),
    },
  };
}

/** The configured judge model; with the fake provider, the deterministic fake judge. */
export function createJudgeModel(config: Pick<LoadedConfig, "dataPath" | "model" | "scorers">): LanguageModelV2 {
  return createLanguageModel(judgeModelSettings(config), fakeJudgeModel);
}

/** The judge model is built on first use: most commands never judge, and a local model is not free to load. */
export function scoringContext(config: Pick<LoadedConfig, "dataPath" | "model" | "scorers">): { judgeModel(): LanguageModelV2 } {
  let model: LanguageModelV2 | undefined;
  return { judgeModel: () => (model ??= createJudgeModel(config)) };
}

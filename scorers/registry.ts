import type { LanguageModelV2 } from "@ai-sdk/provider";
import { createLanguageModel } from "../agents/models/index.ts";
import type { AgentDefinition } from "../agents/types.ts";
import type { LoadedConfig } from "../config/load.ts";
import { InvalidInputError, NotFoundError } from "../store/errors.ts";
import { fakeJudgeModel } from "./fake-judge-model.ts";
import { groundTruthScorer } from "./ground-truth.ts";
import { HUMAN } from "./human-feedback.ts";
import { createJudgeScorer, JUDGE } from "./judge.ts";
import { PROXY } from "./proxy-metrics.ts";
import type { RewardScorer } from "./types.ts";

export const GROUND_TRUTH = groundTruthScorer.id;

/** Scorers the loop runs itself over a stored rollout. */
export const COMPUTED_SCORERS = [GROUND_TRUTH, JUDGE] as const;

export interface ScorerRegistry {
  /** The computed scorer `id`, ready to score this agent's rollouts. Human and proxy rewards are posted, not computed. */
  get(id: string, agent: AgentDefinition): RewardScorer;
  /** The computed scorers among configured names (`cycle.scorers`); the posted ones only count when averaging. */
  computed(ids: readonly string[], agent: AgentDefinition): RewardScorer[];
}

/** The judge model is built on first use: most commands never judge, and a local model is not free to load. */
export function createScorerRegistry(options: { judgeModel(): LanguageModelV2 }): ScorerRegistry {
  const judges = new Map<string, RewardScorer>();
  const get = (id: string, agent: AgentDefinition): RewardScorer => {
    if (id === GROUND_TRUTH) return groundTruthScorer;
    if (id === JUDGE) {
      let judge = judges.get(agent.id);
      if (!judge) judges.set(agent.id, (judge = createJudgeScorer(agent, options.judgeModel())));
      return judge;
    }
    if (id === HUMAN || id === PROXY || id.startsWith(`${PROXY}:`)) {
      throw new InvalidInputError(
        `Scorer "${id}" is not computed: ${id === HUMAN ? "human rewards come from feedback (agl feedback, POST /v1/feedback)" : "proxy rewards come from outcome events (POST /v1/outcomes)"}. Computed scorers: ${COMPUTED_SCORERS.join(", ")}.`,
      );
    }
    throw new NotFoundError(`Unknown scorer "${id}". Computed scorers: ${COMPUTED_SCORERS.join(", ")}; posted: ${HUMAN}, ${PROXY}:<event>.`);
  };
  return {
    get,
    computed: (ids, agent) => ids.filter((id) => (COMPUTED_SCORERS as readonly string[]).includes(id)).map((id) => get(id, agent)),
  };
}

/** Whether a reward of `scorer` counts toward a rollout's reward under the configured names ("proxy" stands for every proxy event). */
export function countsToward(configured: readonly string[], scorer: string): boolean {
  return configured.includes(scorer) || (configured.includes(PROXY) && scorer.startsWith(`${PROXY}:`));
}

/** The mean of a rollout's rewards that count under the configured scorers, or undefined when none does. */
export function rolloutReward(configured: readonly string[], rewards: readonly { scorer: string; value: number }[]): number | undefined {
  const counted = rewards.filter((reward) => countsToward(configured, reward.scorer));
  return counted.length > 0 ? counted.reduce((sum, reward) => sum + reward.value, 0) / counted.length : undefined;
}

/** The judge's model settings: the agent model's, with whatever `scorers.judge` sets instead. */
export function judgeModelSettings(config: Pick<LoadedConfig, "dataPath" | "model" | "scorers">): Pick<LoadedConfig, "dataPath" | "model"> {
  const judge = config.scorers.judge;
  const provider = judge.provider ?? (judge.baseUrl ? "openai-compatible" : config.model.provider);
  return {
    dataPath: config.dataPath,
    model: {
      ...config.model,
      provider,
      ...(judge.baseUrl ? { baseUrl: judge.baseUrl } : {}),
      ...(judge.model ? { name: judge.model } : {}),
      ...(judge.apiKey ? { apiKey: judge.apiKey } : {}),
    },
  };
}

/** The configured judge model; with the fake provider, the deterministic fake judge. */
export function createJudgeModel(config: Pick<LoadedConfig, "dataPath" | "model" | "scorers">): LanguageModelV2 {
  return createLanguageModel(judgeModelSettings(config), fakeJudgeModel);
}

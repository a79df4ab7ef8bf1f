import type { LanguageModelV2 } from "@ai-sdk/provider";
import { z } from "zod";
import { type AgentShape, type ScorerSpec, scorerSpec } from "./spec.ts";
import type { RewardScorer, ScorerInput } from "./types.ts";

export const JUDGE = "judge";
const DESCRIPTION = "An LLM rates the answer 1-5 against the agent's rubric; reward (rating - 3) / 2.";

/** The judge prompt's section headings; the fake judge model finds its way through the prompt by them. */
export const JUDGE_PROMPT = {
  rubric: "The rubric:",
  input: "The input the agent was given:",
  answer: "The agent's answer:",
} as const;

/** A rubric line: `- label: description` (a label rubric) or `- criterion`. */
export const RUBRIC_LINE = /^\s*-\s*([^:]+?)\s*:\s*(.*)$/;

const verdictSchema = z.object({
  rating: z.number().int().min(1).max(5),
  reason: z.string(),
});

const INSTRUCTIONS =
  "You grade the answers of an AI agent against a rubric. Judge only whether the answer meets the rubric for this input; ignore style the rubric does not ask for. Be strict and brief.";

export interface JudgeOptions {
  /** What a good answer does, in the agent's own words; default: for labelled outputs, each field's labels and their descriptions. */
  rubric?: string;
  weight?: number;
}

/**
 * LLM-as-judge: a Mastra scorer whose analyze step is a judge prompt (the agent's task, its rubric, the
 * input and the answer) answered by the configured judge model (`scorers.judge`, else the agent model)
 * with a rating 1-5 and a reason. The reward is (rating − 3) / 2, the same scale as a human rating.
 * Reference-free: it needs no ground truth, so it can score live traffic.
 */
export function judge(options: JudgeOptions = {}): ScorerSpec {
  return scorerSpec({ id: JUDGE, weight: options.weight, build: (agent) => judgeScorer(agent, options.rubric ?? defaultRubric(agent)) });
}

function judgeScorer(agent: AgentShape, rubric: string): RewardScorer {
  const pipelines = new WeakMap<LanguageModelV2, Promise<ReturnType<typeof buildPipeline>>>();
  // Mastra's scorer module takes a second to load: only a process that judges pays for it.
  const pipelineFor = (model: LanguageModelV2) => import("@mastra/core/evals").then(({ createScorer }) => buildPipeline(createScorer, model));
  const buildPipeline = (createScorer: typeof import("@mastra/core/evals").createScorer, model: LanguageModelV2) =>
    createScorer<ScorerInput, unknown>({
      id: JUDGE,
      description: DESCRIPTION,
      // Native structured output: the local model then answers through a JSON grammar instead of free text.
      judge: { model, instructions: INSTRUCTIONS, jsonPromptInjection: false },
    })
      .analyze({
        description: "Rate the answer 1-5 with a one-sentence reason",
        outputSchema: verdictSchema,
        createPrompt: ({ run }) => judgePrompt(agent, rubric, run.input!),
      })
      .generateScore(({ results }) => (results.analyzeStepResult.rating - 3) / 2)
      .generateReason(({ results }) => results.analyzeStepResult.reason.trim());

  return {
    id: JUDGE,
    description: DESCRIPTION,
    async score(input, context) {
      if (input.output === null) {
        return { value: -1, reason: `the agent failed (${input.error ?? "no output"}); nothing to judge`, details: { rating: 1, judge: null } };
      }
      const model = context.judgeModel();
      let pipeline = pipelines.get(model);
      if (!pipeline) pipelines.set(model, (pipeline = pipelineFor(model)));
      const result = await (await pipeline).run({ input, output: input.output });
      const { rating } = result.analyzeStepResult as z.infer<typeof verdictSchema>;
      const judgeName = `${model.provider}/${model.modelId}`;
      return { value: result.score as number, reason: `rated ${rating}/5 by ${judgeName}: ${result.reason ?? ""}`, details: { rating, judge: judgeName } };
    },
  };
}

/** For labelled outputs, each field with its labels and their descriptions; otherwise a plain correctness rubric. */
function defaultRubric(agent: AgentShape): string {
  const fields = Object.entries(agent.labels);
  if (fields.length === 0) return "- The answer is correct and complete for the input, as the agent's task asks.";
  return fields
    .map(([field, labels]) => [`${field}:`, ...labels.map((label) => `- ${label}: ${agent.labelDescriptions[field]?.[label] ?? ""}`.trimEnd())].join("\n"))
    .join("\n");
}

function judgePrompt(agent: AgentShape, rubric: string, run: ScorerInput): string {
  const answer = agent.outputKind === "text" ? String(run.output?.text ?? "") : JSON.stringify(run.output);
  return [
    `The agent's task: ${agent.description}`,
    "",
    JUDGE_PROMPT.rubric,
    rubric.trim(),
    "",
    JUDGE_PROMPT.input,
    agent.message(run.input),
    "",
    JUDGE_PROMPT.answer,
    answer,
    "",
    'Rate the answer from 1 to 5 against the rubric: 5 = it meets every point, 3 = some, 1 = none. Answer with JSON: {"rating": <1-5>, "reason": "<one sentence naming each point it misses>"}.',
  ].join("\n");
}

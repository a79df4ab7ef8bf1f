import type { LanguageModelV2 } from "@ai-sdk/provider";
import { createScorer } from "@mastra/core/evals";
import { z } from "zod";
import type { AgentDefinition } from "../agents/types.ts";
import type { RewardScorer, ScorerInput } from "./types.ts";

export const JUDGE = "judge";

/** The judge prompt's section headings; the fake judge model finds its way through the prompt by them. */
export const JUDGE_PROMPT = {
  fields: "The answer's fields, each one of the labels listed under it:",
  input: "The input the agent was given:",
  answer: "The agent's answer (JSON):",
} as const;

/** A rubric line: `- label: description`. */
export const RUBRIC_LINE = /^\s*-\s*([^:]+?)\s*:\s*(.*)$/;

const verdictSchema = z.object({
  rating: z.number().int().min(1).max(5),
  reason: z.string(),
});

const INSTRUCTIONS =
  "You grade the answers of an AI agent. Judge only whether the answer is right for the input, field by field; ignore style. Be strict and brief.";

/**
 * LLM-as-judge: a Mastra scorer whose analyze step is a judge prompt (the agent's task, its label
 * rubric, the input and the answer) answered by the configured judge model with a rating 1-5 and a
 * reason. The reward is (rating - 3) / 2, so 1 -> -1, 3 -> 0, 5 -> +1, the same scale as a human rating.
 * Reference-free: it needs no ground truth, so it can score live traffic.
 */
export function createJudgeScorer(agent: AgentDefinition, model: LanguageModelV2): RewardScorer {
  const pipeline = createScorer<ScorerInput, unknown>({
    id: JUDGE,
    description: "An LLM rates the answer 1-5 for the input; reward (rating - 3) / 2.",
    // Native structured output: the local model then answers through a JSON grammar instead of free text.
    judge: { model, instructions: INSTRUCTIONS, jsonPromptInjection: false },
  })
    .analyze({
      description: "Rate the answer 1-5 with a one-sentence reason",
      outputSchema: verdictSchema,
      createPrompt: ({ run }) => judgePrompt(agent, run.input!),
    })
    .generateScore(({ results }) => (results.analyzeStepResult.rating - 3) / 2)
    .generateReason(({ results }) => results.analyzeStepResult.reason.trim());

  const judgeName = `${model.provider}/${model.modelId}`;
  return {
    id: JUDGE,
    description: pipeline.description,
    async score(input) {
      if (input.output === null) {
        return { value: -1, reason: `the agent failed (${input.error ?? "no output"}); nothing to judge`, details: { rating: 1, judge: null } };
      }
      const result = await pipeline.run({ input, output: input.output });
      const { rating } = result.analyzeStepResult as z.infer<typeof verdictSchema>;
      return { value: result.score as number, reason: `rated ${rating}/5 by ${judgeName}: ${result.reason ?? ""}`, details: { rating, judge: judgeName } };
    },
  };
}

function judgePrompt(agent: AgentDefinition, run: ScorerInput): string {
  const rubric = Object.entries(agent.labels).map(([field, labels]) => {
    const described = new Map(
      (agent.prompt.seed.components[agent.prompt.labelComponents[field] ?? ""] ?? "")
        .split("\n")
        .map((line) => RUBRIC_LINE.exec(line))
        .filter((match) => match !== null)
        .map((match) => [match[1]!, match[2]!]),
    );
    return [`${field}:`, ...labels.map((label) => `- ${label}: ${described.get(label) ?? ""}`.trimEnd())].join("\n");
  });
  return [
    `The agent's task: ${agent.description}`,
    "",
    JUDGE_PROMPT.fields,
    ...rubric,
    "",
    JUDGE_PROMPT.input,
    agent.userMessage(run.input),
    "",
    JUDGE_PROMPT.answer,
    JSON.stringify(run.output),
    "",
    'Rate the answer from 1 to 5: 5 = every field is right for this input, 3 = some fields are right, 1 = none is. Answer with JSON: {"rating": <1-5>, "reason": "<one sentence naming each wrong field>"}.',
  ].join("\n");
}

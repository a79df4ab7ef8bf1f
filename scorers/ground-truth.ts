import { createScorer } from "@mastra/core/evals";
import type { RewardScorer, ScorerInput } from "./types.ts";

interface FieldCheck {
  field: string;
  expected: unknown;
  actual: unknown;
  correct: boolean;
}

/**
 * Compares the output with the expected fields that are present (ground truth may be partial):
 * every field right +1, some right +0.5, none right -1. A failed run gets none right.
 * Built as a Mastra scorer pipeline (preprocess -> score -> reason) so every reward has a reason.
 */
const pipeline = createScorer<ScorerInput, unknown>({
  id: "ground-truth",
  description: "Exact match of each expected field: all right +1, some right +0.5, none right -1.",
})
  .preprocess(({ run }): { checks: FieldCheck[] } => {
    const { expected, output } = run.input!;
    const checks = Object.entries(expected ?? {}).map(([field, value]) => {
      const actual = output?.[field];
      return { field, expected: value, actual, correct: output !== null && JSON.stringify(actual) === JSON.stringify(value) };
    });
    return { checks };
  })
  .generateScore(({ results }) => {
    const { checks } = results.preprocessStepResult;
    const right = checks.filter((check) => check.correct).length;
    if (right === checks.length) return 1;
    return right > 0 ? 0.5 : -1;
  })
  .generateReason(({ run, results }) => {
    const { checks } = results.preprocessStepResult;
    const parts = checks.map((check) =>
      check.correct ? `${check.field} right (${String(check.expected)})` : `${check.field} wrong (expected ${String(check.expected)}, got ${check.actual === undefined ? "nothing" : String(check.actual)})`,
    );
    const failure = run.input!.output === null ? `the agent failed (${run.input!.error ?? "no output"}); ` : "";
    return `${failure}${parts.join("; ")}`;
  });

export const groundTruthScorer: RewardScorer = {
  id: "ground-truth",
  description: pipeline.description,
  async score(input) {
    if (!input.expected || Object.keys(input.expected).length === 0) return undefined;
    const result = await pipeline.run({ input, output: input.output });
    const checks = (result.preprocessStepResult as { checks: FieldCheck[] }).checks;
    return {
      value: result.score as number,
      reason: result.reason ?? "",
      details: { fields: Object.fromEntries(checks.map((check) => [check.field, check.correct])) },
    };
  },
};

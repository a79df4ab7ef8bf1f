import { canonical, defaultMatcher, type FieldMatcher, tokenF1 } from "./matchers.ts";
import { type AgentShape, type ScorerSpec, scorerSpec } from "./spec.ts";
import type { RewardScorer, ScorerInput } from "./types.ts";

export const GROUND_TRUTH = "ground-truth";
const DESCRIPTION = "Each expected field compared with its matcher; reward 2 × mean credit − 1.";

interface FieldCheck {
  field: string;
  matcher: string;
  expected: unknown;
  actual: unknown;
  credit: number;
}

export interface GroundTruthOptions {
  /** Output field -> how it is compared (default from its type: labels, booleans and objects exact, text normalised, numbers equal, arrays by set overlap; a text agent's answer by token F1). */
  fields?: Record<string, FieldMatcher>;
  weight?: number;
}

/**
 * Compares the answer with the expected fields that are present (ground truth may be partial), field by
 * field with each field's matcher. The reward is 2 × the mean credit − 1: every field right +1, none
 * right −1, linear between; a failed run gets none right. Built as a Mastra scorer pipeline
 * (preprocess → score → reason), so every reward has a reason.
 */
export function groundTruth(options: GroundTruthOptions = {}): ScorerSpec {
  const chosen = options.fields ?? {};
  return scorerSpec({
    id: GROUND_TRUTH,
    weight: options.weight,
    alternativesFields: Object.entries(chosen)
      .filter(([, matcher]) => matcher.acceptsAlternatives)
      .map(([field]) => field),
    build: (agent) => groundTruthScorer(agent, chosen),
  });
}

function groundTruthScorer(agent: AgentShape, chosen: Record<string, FieldMatcher>): RewardScorer {
  const properties = (agent.outputJsonSchema?.properties ?? {}) as Record<string, Record<string, unknown>>;
  const matcherFor = (field: string) => chosen[field] ?? (agent.outputKind === "text" && field === "text" ? tokenF1() : defaultMatcher(properties[field]));
  let pipeline: Promise<ReturnType<typeof buildPipeline>> | undefined;
  // Mastra's scorer module takes a second to load: only a process that scores pays for it.
  const loaded = () => (pipeline ??= import("@mastra/core/evals").then(({ createScorer }) => buildPipeline(createScorer)));
  const buildPipeline = (createScorer: typeof import("@mastra/core/evals").createScorer) =>
    createScorer<ScorerInput, unknown>({
      id: GROUND_TRUTH,
      description: DESCRIPTION,
    })
      .preprocess(({ run }): { checks: FieldCheck[] } => {
        const { expected, output } = run.input!;
        const checks = Object.entries(expected ?? {}).map(([field, value]) => {
          const matcher = matcherFor(field);
          const actual = output?.[field];
          return { field, matcher: matcher.name, expected: value, actual, credit: output === null || actual === undefined ? 0 : matcher.credit(value, actual) };
        });
        return { checks };
      })
      .generateScore(({ results }) => {
        const { checks } = results.preprocessStepResult;
        return 2 * (checks.reduce((sum, check) => sum + check.credit, 0) / checks.length) - 1;
      })
      .generateReason(({ run, results }) => {
        const parts = results.preprocessStepResult.checks.map(describeCheck);
        const failure = run.input!.output === null ? `the agent failed (${run.input!.error ?? "no output"}); ` : "";
        return `${failure}${parts.join("; ")}`;
      });

  return {
    id: GROUND_TRUTH,
    description: DESCRIPTION,
    async score(input) {
      if (!input.expected || Object.keys(input.expected).length === 0) return undefined;
      const result = await (await loaded()).run({ input, output: input.output });
      const checks = (result.preprocessStepResult as { checks: FieldCheck[] }).checks;
      return {
        value: result.score as number,
        reason: result.reason ?? "",
        details: {
          fields: Object.fromEntries(checks.map((check) => [check.field, check.credit >= 1])),
          credit: Object.fromEntries(checks.map((check) => [check.field, round(check.credit)])),
        },
      };
    },
  };
}

function describeCheck(check: FieldCheck): string {
  const shown = (value: unknown) => (value === undefined ? "nothing" : truncate(typeof value === "string" ? value : canonical(value)));
  if (check.credit >= 1) return `${check.field} right (${shown(check.expected)})`;
  const partial = check.credit > 0 ? ` ${round(check.credit)} by ${check.matcher}` : "";
  return `${check.field} wrong${partial} (expected ${shown(check.expected)}, got ${shown(check.actual)})`;
}

function truncate(text: string, limit = 80): string {
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

import { z } from "zod";
import { placeholdersOf } from "../agents/prompt-template.ts";

/** Version of the JSON files exchanged with the Python optimizer; both sides refuse any other. */
export const OPTIMIZER_CONTRACT_VERSION = 1;

const label = z.string().min(1);

export const optimizerRolloutSchema = z
  .object({
    id: z.string().min(1),
    task_id: z.string().nullable(),
    input: z.record(z.string(), z.unknown()),
    output: z.record(z.string(), z.unknown()).nullable(),
    expected: z.record(z.string(), z.unknown()).nullable(),
    reward: z.number().min(-1).max(1).nullable(),
    rewards: z.array(z.object({ scorer: z.string(), value: z.number().min(-1).max(1), reason: z.string() }).strict()),
    error: z.string().nullable(),
  })
  .strict();

export const optimizerRequestSchema = z
  .object({
    schema_version: z.literal(OPTIMIZER_CONTRACT_VERSION),
    command: z.literal("propose"),
    request_id: z.string().min(1),
    algorithm: z.string().min(1),
    seed: z.number().int(),
    params: z.record(z.string(), z.number()),
    agent: z
      .object({
        name: z.string().min(1),
        input_text_field: z.string().min(1),
        output_fields: z.record(z.string(), z.array(label).min(1)),
        label_components: z.record(z.string(), z.string()),
        examples_component: z.string().min(1),
      })
      .strict(),
    prompt: z
      .object({
        version: z.number().int().positive(),
        engine: z.literal("placeholders"),
        components: z.record(z.string(), z.string()),
      })
      .strict(),
    rollouts: z.array(optimizerRolloutSchema),
  })
  .strict();

export const optimizerResponseSchema = z
  .object({
    schema_version: z.literal(OPTIMIZER_CONTRACT_VERSION),
    request_id: z.string().min(1),
    algorithm: z.string().min(1),
    seed: z.number().int(),
    candidates: z.array(
      z
        .object({
          id: z.string().regex(/^c\d+$/, "expected c1, c2, ..."),
          strategy: z.string().min(1),
          components: z.record(z.string(), z.string()),
          rationale: z.string().min(1),
          train_score: z.number().nullable(),
        })
        .strict(),
    ),
    rounds: z.array(z.object({ round: z.number().int().positive(), best_train_score: z.number().nullable(), candidates: z.number().int().min(0) }).strict()),
    stats: z.record(z.string(), z.unknown()),
  })
  .strict();

export type OptimizerRequest = z.infer<typeof optimizerRequestSchema>;
export type OptimizerResponse = z.infer<typeof optimizerResponseSchema>;

/**
 * Checks what a schema cannot: the answer belongs to this request, candidates are distinct, and every
 * candidate keeps the prompt's components and placeholders. Returns the problems, empty when valid.
 */
export function contractViolations(request: OptimizerRequest, response: OptimizerResponse): string[] {
  const problems: string[] = [];
  if (response.request_id !== request.request_id) problems.push(`request_id is "${response.request_id}", expected "${request.request_id}"`);
  const componentNames = Object.keys(request.prompt.components).sort();
  const seen = new Set<string>();
  const ids = new Set<string>();
  response.candidates.forEach((candidate, index) => {
    const where = `candidates[${index}] (${candidate.id})`;
    if (ids.has(candidate.id)) problems.push(`${where}: duplicate id`);
    ids.add(candidate.id);
    const names = Object.keys(candidate.components).sort();
    if (JSON.stringify(names) !== JSON.stringify(componentNames)) problems.push(`${where}: components are [${names.join(", ")}], expected [${componentNames.join(", ")}]`);
    for (const [name, original] of Object.entries(request.prompt.components)) {
      const edited = candidate.components[name] ?? "";
      if (original.trim() !== "" && edited.trim() === "") problems.push(`${where}: component "${name}" became empty`);
      for (const placeholder of placeholdersOf(original)) {
        if (!placeholdersOf(edited).includes(placeholder)) problems.push(`${where}: component "${name}" lost the placeholder {{${placeholder}}}`);
      }
    }
    const key = JSON.stringify(Object.fromEntries(componentNames.map((name) => [name, candidate.components[name]])));
    const incumbentKey = JSON.stringify(Object.fromEntries(componentNames.map((name) => [name, request.prompt.components[name]])));
    if (key === incumbentKey) problems.push(`${where}: identical to the incumbent prompt`);
    else if (seen.has(key)) problems.push(`${where}: identical to an earlier candidate`);
    seen.add(key);
  });
  return problems;
}

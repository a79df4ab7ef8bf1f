import { z } from "zod";
import { placeholdersOf } from "../agents/prompt-template.ts";
import type { AgentDefinition } from "../agents/types.ts";

/** Version of the JSON files exchanged with the Python optimizer; both sides refuse any other. */
export const OPTIMIZER_CONTRACT_VERSION = 2;

const label = z.string().min(1);

export const optimizerRolloutSchema = z
  .object({
    id: z.string().min(1),
    task_id: z.string().nullable(),
    input: z.record(z.string(), z.unknown()),
    output: z.record(z.string(), z.unknown()).nullable(),
    expected: z.record(z.string(), z.unknown()).nullable(),
    /** Which prompt produced it: "incumbent" or a candidate id. */
    prompt_id: z.string().min(1),
    reward: z.number().min(-1).max(1).nullable(),
    rewards: z.array(z.object({ scorer: z.string(), value: z.number().min(-1).max(1), reason: z.string() }).strict()),
    error: z.string().nullable(),
  })
  .strict();

const components = z.record(z.string(), z.string());

export const optimizerRequestSchema = z
  .object({
    schema_version: z.literal(OPTIMIZER_CONTRACT_VERSION),
    command: z.literal("propose"),
    request_id: z.string().min(1),
    algorithm: z.string().min(1),
    seed: z.number().int(),
    /** One call is one round of a search whose beam the workflow keeps. */
    round: z.number().int().positive(),
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
        components,
      })
      .strict(),
    /** The beam members to improve this round (round 1: the incumbent). */
    parents: z.array(z.object({ id: z.string().min(1), components }).strict()).min(1),
    rollouts: z.array(optimizerRolloutSchema),
    /** An OpenAI-compatible endpoint for algorithms that call a model; null for LLM-free ones. */
    llm: z
      .object({ base_url: z.url(), model: z.string().min(1), api_key: z.string().nullable(), timeout_s: z.number().positive() })
      .strict()
      .nullable(),
  })
  .strict();

export const optimizerResponseSchema = z
  .object({
    schema_version: z.literal(OPTIMIZER_CONTRACT_VERSION),
    request_id: z.string().min(1),
    algorithm: z.string().min(1),
    seed: z.number().int(),
    round: z.number().int().positive(),
    candidates: z.array(
      z
        .object({
          id: z.string().regex(/^r\d+c\d+$/, "expected r<round>c<n>"),
          parent: z.string().min(1),
          strategy: z.string().min(1),
          components,
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

/** What the optimizer needs to know of an agent: its input field, its labels and which components describe them. */
export function agentSpecFor(agent: AgentDefinition): OptimizerRequest["agent"] {
  return {
    name: agent.id,
    input_text_field: agent.inputTextField,
    output_fields: Object.fromEntries(Object.entries(agent.labels).map(([field, labels]) => [field, [...labels]])),
    label_components: agent.prompt.labelComponents,
    examples_component: agent.prompt.examplesComponent,
  };
}
export type OptimizerResponse = z.infer<typeof optimizerResponseSchema>;

/**
 * Checks what a schema cannot: the answer belongs to this request, candidates are distinct, and every
 * candidate keeps the prompt's components and placeholders. Returns the problems, empty when valid.
 */
export function contractViolations(request: OptimizerRequest, response: OptimizerResponse): string[] {
  const problems: string[] = [];
  if (response.request_id !== request.request_id) problems.push(`request_id is "${response.request_id}", expected "${request.request_id}"`);
  if (response.round !== request.round) problems.push(`round is ${response.round}, expected ${request.round}`);
  const parents = new Map(request.parents.map((parent) => [parent.id, parent.components]));
  const componentNames = Object.keys(request.prompt.components).sort();
  const seen = new Set<string>();
  const ids = new Set<string>();
  response.candidates.forEach((candidate, index) => {
    const where = `candidates[${index}] (${candidate.id})`;
    if (ids.has(candidate.id)) problems.push(`${where}: duplicate id`);
    if (!candidate.id.startsWith(`r${request.round}c`)) problems.push(`${where}: id does not belong to round ${request.round}`);
    const parent = parents.get(candidate.parent);
    if (!parent) problems.push(`${where}: parent "${candidate.parent}" is not one of this round's parents`);
    else if (componentsKey(parent) === componentsKey(candidate.components)) problems.push(`${where}: identical to its parent`);
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

/** A canonical form of a prompt's components (sorted by name), to compare prompts by. */
export function componentsKey(components: Record<string, string>): string {
  return JSON.stringify(Object.entries(components).sort(([a], [b]) => a.localeCompare(b)));
}

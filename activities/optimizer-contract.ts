import { z } from "zod";
import { placeholdersOf } from "../agents/prompt-template.ts";
import type { AgentDefinition } from "../agents/types.ts";
import type { CycleSettings } from "../workflows/types.ts";

/** Version of the JSON files exchanged with the Python optimizer; both sides refuse any other. */
export const OPTIMIZER_CONTRACT_VERSION = 3;

const label = z.string().min(1);
const components = z.record(z.string(), z.string());

export const optimizerRolloutSchema = z
  .object({
    id: z.string().min(1),
    task_id: z.string().nullable(),
    input: z.record(z.string(), z.unknown()),
    /** The user message the agent was sent for this input. */
    message: z.string(),
    /** The structured answer, or `{text}` for a free-text agent; null when the run failed. */
    output: z.record(z.string(), z.unknown()).nullable(),
    expected: z.record(z.string(), z.unknown()).nullable(),
    /** Which prompt produced it: "incumbent" or a candidate id. */
    prompt_id: z.string().min(1),
    reward: z.number().min(-1).max(1).nullable(),
    rewards: z.array(z.object({ scorer: z.string(), value: z.number().min(-1).max(1), reason: z.string() }).strict()),
    error: z.string().nullable(),
    tool_calls: z.array(z.object({ name: z.string(), args: z.unknown(), result: z.unknown() }).strict()).optional(),
  })
  .strict();

export const optimizerAgentSchema = z
  .object({
    name: z.string().min(1),
    description: z.string(),
    output: z.object({ kind: z.enum(["object", "text"]), schema: z.record(z.string(), z.unknown()).nullable() }).strict(),
    components: z.array(z.string().min(1)).min(1),
    editable: z.array(z.string().min(1)),
    required_placeholders: z.array(z.string().min(1)),
    label_sets: z.record(z.string(), z.array(label).min(1)),
    label_components: z.record(z.string(), z.string()),
    examples_component: z.string().min(1).nullable(),
  })
  .strict();

const promptId = z.string().min(1);

/** GEPA's step (algorithm "gepa" only): rewrite one component of the one parent, or merge the two parents. */
export const gepaStepSchema = z.discriminatedUnion("step", [
  z.object({ step: z.literal("reflect"), component: z.string().min(1) }).strict(),
  z.object({ step: z.literal("merge"), ancestor: z.object({ id: promptId, components }).strict() }).strict(),
]);

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
    agent: optimizerAgentSchema,
    prompt: z
      .object({
        version: z.number().int().positive(),
        engine: z.literal("placeholders"),
        components,
      })
      .strict(),
    /** The beam members to improve this round (round 1: the incumbent); for gepa the step's parent(s). */
    parents: z.array(z.object({ id: promptId, components }).strict()).min(1),
    rollouts: z.array(optimizerRolloutSchema),
    /** An OpenAI-compatible endpoint for algorithms that call a model; null for LLM-free ones. */
    llm: z
      .object({ base_url: z.url(), model: z.string().min(1), api_key: z.string().nullable(), timeout_s: z.number().positive() })
      .strict()
      .nullable(),
    gepa: gepaStepSchema.optional(),
  })
  .strict()
  .superRefine((request, context) => {
    const gepa = request.algorithm === "gepa";
    if (gepa !== (request.gepa !== undefined)) {
      context.addIssue({ code: "custom", path: ["gepa"], message: gepa ? 'algorithm "gepa" needs its step' : `only algorithm "gepa" takes a gepa step, not "${request.algorithm}"` });
    }
    const parents = request.gepa?.step === "merge" ? 2 : request.gepa ? 1 : undefined;
    if (parents !== undefined && request.parents.length !== parents) {
      context.addIssue({ code: "custom", path: ["parents"], message: `a gepa ${request.gepa!.step} step takes exactly ${parents} parent${parents > 1 ? "s" : ""}` });
    }
  });

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
export type OptimizerAgentSpec = z.infer<typeof optimizerAgentSchema>;

/**
 * What the optimizer knows of an agent: its prompt's components and which of them it may edit, its output
 * shape as JSON Schema, and its closed label sets where it has any. `components` are the incumbent's: a
 * published version may hold components the seed did not.
 */
export function agentSpecFor(agent: AgentDefinition, promptComponents: Record<string, string>): OptimizerAgentSpec {
  const names = Object.keys(promptComponents);
  return {
    name: agent.id,
    description: agent.description,
    output: { kind: agent.outputKind, schema: agent.outputJsonSchema },
    components: names,
    editable: agent.prompt.editable.filter((name) => names.includes(name)),
    required_placeholders: [...agent.prompt.requiredPlaceholders],
    label_sets: Object.fromEntries(Object.entries(agent.labels).map(([field, labels]) => [field, [...labels]])),
    label_components: { ...agent.prompt.labelComponents },
    examples_component: agent.prompt.examplesComponent,
  };
}

/** The optimizer's parameters for one algorithm, from the cycle's settings. */
export function optimizerParams(settings: CycleSettings["optimizer"]): Record<string, number> {
  switch (settings.algorithm) {
    case "apo":
      return { branch_factor: settings.candidates, minibatch_size: settings.minibatchSize, max_tokens: 256 };
    case "few-shot":
      return { num_candidates: settings.candidates, max_examples: Math.max(1, settings.maxExamples) };
    case "gepa":
      // A reflection writes a whole component: twice apo's room for an edit.
      return { max_tokens: 512 };
    default:
      return { num_candidates: settings.candidates, max_examples: settings.maxExamples, max_keywords: settings.maxKeywords };
  }
}

/**
 * Why `algorithm` cannot change anything of this agent's prompt, or undefined when it can. Asked before a
 * cycle (or schedule) starts, so an algorithm never silently does nothing.
 */
export function algorithmRefusal(agent: AgentDefinition, algorithm: string): string | undefined {
  const editable = new Set(agent.prompt.editable);
  const examples = agent.prompt.examplesComponent;
  const examplesEditable = examples !== null && editable.has(examples);
  const labelComponents = Object.values(agent.prompt.labelComponents).filter((name) => editable.has(name));
  const freeText = agent.prompt.editable.filter((name) => name !== examples && !Object.values(agent.prompt.labelComponents).includes(name));
  const why = (needs: string) => `optimizer "${algorithm}" cannot train agent "${agent.id}": ${needs}`;
  switch (algorithm) {
    case "few-shot":
      return examplesEditable ? undefined : why(examples === null ? "the agent takes no demonstrations (prompt.examples is false)" : `its examples component "${examples}" is not editable (prompt.editable)`);
    case "llm-free":
      return examplesEditable || labelComponents.length > 0
        ? undefined
        : why("it edits label descriptions and demonstrations, and the agent has neither an editable label component (prompt.labels) nor an editable examples component (prompt.examples)");
    case "apo":
    case "gepa":
      return freeText.length > 0 || labelComponents.length > 0 ? undefined : why("it rewrites instructions and label descriptions, and none of the agent's editable components is one (prompt.editable)");
    default:
      return why("unknown algorithm");
  }
}
export type OptimizerResponse = z.infer<typeof optimizerResponseSchema>;

/**
 * Checks what a schema cannot: the answer belongs to this request, candidates are distinct, and every
 * candidate keeps the prompt's components and placeholders and changes only editable components. Returns the problems, empty when valid.
 */
export function contractViolations(request: OptimizerRequest, response: OptimizerResponse): string[] {
  const problems: string[] = [];
  if (response.request_id !== request.request_id) problems.push(`request_id is "${response.request_id}", expected "${request.request_id}"`);
  if (response.round !== request.round) problems.push(`round is ${response.round}, expected ${request.round}`);
  const parents = new Map(request.parents.map((parent) => [parent.id, parent.components]));
  const componentNames = Object.keys(request.prompt.components).sort();
  if (request.gepa && response.candidates.length > 1) problems.push(`a gepa ${request.gepa.step} step makes at most one child, got ${response.candidates.length}`);
  const seen = new Set<string>();
  const ids = new Set<string>();
  response.candidates.forEach((candidate, index) => {
    const where = `candidates[${index}] (${candidate.id})`;
    if (ids.has(candidate.id)) problems.push(`${where}: duplicate id`);
    if (!candidate.id.startsWith(`r${request.round}c`)) problems.push(`${where}: id does not belong to round ${request.round}`);
    const parent = parents.get(candidate.parent);
    if (!parent) problems.push(`${where}: parent "${candidate.parent}" is not one of this round's parents`);
    else if (componentsKey(parent) === componentsKey(candidate.components)) problems.push(`${where}: identical to its parent`);
    else {
      const changed = Object.keys(parent).filter((name) => !request.agent.editable.includes(name) && parent[name] !== candidate.components[name]);
      if (changed.length > 0) problems.push(`${where}: changed ${changed.map((name) => `"${name}"`).join(", ")}, which the agent does not let an optimizer edit`);
    }
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

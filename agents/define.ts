import { statSync } from "node:fs";
import { isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import type { LanguageModelV2 } from "@ai-sdk/provider";
import { z } from "zod";
import { agentShape, toScorerSpec } from "../scorers/registry.ts";
import { groundTruth } from "../scorers/ground-truth.ts";
import type { ScorerSpec } from "../scorers/spec.ts";
import { InvalidInputError } from "../store/errors.ts";
import { placeholdersOf, ROOT_COMPONENT } from "./prompt-template.ts";
import type { AgentDefinition, MastraAgentLike, WeightedScorer } from "./types.ts";

/** Recognises definitions made by another copy of this package too (a user's project may resolve its own). */
const AGENT_BRAND = Symbol.for("agl.agent-definition");

/** Agent ids name prompt resources, workflows and data sets: letters, digits, `.`, `_`, `-`. */
export const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const COMPONENT_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_EXAMPLES_COMPONENT = "examples";
const DEFAULT_MAX_STEPS = 5;

/** An agent's scorer: a factory's spec (`groundTruth()`, `judge()`, …), a Mastra scorer, `{scorer, weight}`, or a built-in's id. */
export type ScorerEntry = ScorerSpec | string | { scorer: unknown; weight?: number; scale?: "0..1" | "-1..1" } | { id: string; run: (...args: never[]) => unknown };

export interface AgentOptions<Input extends z.ZodObject = z.ZodObject, Output extends z.ZodObject | "text" = z.ZodObject | "text"> {
  /** Names the agent in every command (`--agent`), its prompt resource by default, its workflows and rollouts. */
  id: string;
  /** What the agent does, in a sentence: the judge and the optimizers read it. */
  description?: string;
  /** Your own Mastra agent: its model, tools and memory stay yours; the loop supplies only the instructions of the prompt version under test, per request. */
  agent?: MastraAgentLike;
  /** Or a model (an AI SDK language model); without `agent` and `model`, the model agl's configuration selects. */
  model?: LanguageModelV2;
  /** Mastra tools for a `model` agent. */
  tools?: Record<string, unknown>;
  /** Most model calls one run may make (tool calls take one each); default 5. */
  maxSteps?: number;
  /** The input of one task (zod object). */
  input: Input;
  /** The answer: a zod object (structured output) or "text" (free text, stored as `{text}`). */
  output: Output;
  /** The ground truth a data set may give per task; default: any of the output's fields (`{text}` for text agents). */
  expected?: z.ZodObject;
  /** How an input becomes the user message; default: the input's only string field, else the input as JSON. */
  message?: (input: z.infer<Input>) => string;
  prompt: {
    /** The prompt resource's name; default: the agent id. */
    resource?: string;
    /** Version 1: named text components; `instructions` is the system prompt, `{{name}}` places another component. */
    components?: Record<string, string>;
    /** Shorthand for `components: {instructions}`. */
    instructions?: string;
    /** Components an optimizer may change; default: all. */
    editable?: readonly string[];
    /** Placeholders `instructions` must keep; default: every placeholder of the seed's `instructions`. */
    placeholders?: readonly string[];
    /** Closed label sets: output field (a string enum) -> the component with one `- label: description` line per label. */
    labels?: Record<string, string>;
    /** The component few-shot demonstrations go to (added, empty and placed at the end of `instructions`, when missing); `false`: none. Default `examples`. */
    examples?: string | false;
  };
  /** How a rollout is rewarded: weighted scorers; default `[groundTruth()]`. */
  scorers?: readonly ScorerEntry[];
  /** Data sets shipped with the agent: name -> JSONL file (absolute path or `new URL("./x.jsonl", import.meta.url)`). */
  datasets?: Record<string, string | URL>;
}

/**
 * Defines an agent the loop can train. Everything is checked here, with every problem named, so a
 * mistake stops the command that loads the config before anything is written.
 */
export function defineAgent<Input extends z.ZodObject, Output extends z.ZodObject | "text">(options: AgentOptions<Input, Output>): AgentDefinition {
  const id = typeof options?.id === "string" ? options.id : "(no id)";
  const problems: string[] = [];
  const fail = (): never => {
    const where = definedAt();
    throw new InvalidInputError(`agent "${id}"${where ? ` (defined at ${where})` : ""}: ${problems.join("; ")}`);
  };
  if (!AGENT_ID.test(id)) problems.push(`id must be 1-63 letters, digits, ".", "_" or "-" starting with a letter or digit (got ${JSON.stringify(options?.id)})`);

  const runtime = runtimeOf(options, problems);
  const inputSchema = zodObject(options.input, "input", problems);
  const textOutput = options.output === "text";
  const outputSchema = textOutput ? null : zodObject(options.output, 'output (a zod object, or "text")', problems);
  const outputJsonSchema = outputSchema ? jsonSchemaOf(outputSchema, problems) : null;
  if (problems.length > 0) fail();

  const labels = enumFields(outputJsonSchema);
  const prompt = promptOf(id, options.prompt, labels, problems);
  const specs = (options.scorers ?? [groundTruth()]).map((entry, index) => {
    try {
      return toScorerSpec(entry);
    } catch (error) {
      problems.push(`scorers[${index}]: ${(error as Error).message}`);
      return undefined;
    }
  });
  const duplicated = specs.filter((spec, index) => spec && specs.findIndex((other) => other?.id === spec.id) !== index).map((spec) => spec!.id);
  if (duplicated.length > 0) problems.push(`two scorers share the id ${[...new Set(duplicated)].map((name) => `"${name}"`).join(", ")}`);
  if (specs.length === 0) problems.push("scorers must list at least one scorer");
  const datasets = datasetsOf(options.datasets ?? {}, problems);
  const message = messageOf(options.message as ((input: Record<string, unknown>) => string) | undefined, inputSchema!, problems);
  const expectedSchema = expectedOf(options.expected, outputSchema, specs, problems);
  if (problems.length > 0 || !prompt) fail();

  const definition: Omit<AgentDefinition, "scorers"> = {
    id,
    description: options.description?.trim() || `Agent ${id}`,
    inputSchema: inputSchema!,
    outputKind: textOutput ? "text" : "object",
    outputSchema,
    outputJsonSchema,
    expectedSchema: expectedSchema!,
    labels,
    message: message!,
    prompt: prompt!,
    datasets,
    runtime: runtime!,
  };
  const shape = agentShape({ ...definition, scorers: [] });
  const scorers: WeightedScorer[] = specs.map((spec) => ({ id: spec!.id, weight: spec!.weight, scorer: spec!.build(shape) }));
  return Object.freeze({ ...definition, scorers, [AGENT_BRAND]: true }) as AgentDefinition;
}

/** The file and line that called defineAgent, so an error names the user's own module. */
function definedAt(): string | undefined {
  const frames = (new Error().stack ?? "").split("\n").slice(1);
  const here = import.meta.url.replace(/^file:\/\//, "");
  const caller = frames.find((frame) => !frame.includes(here) && /\((?:file:\/\/)?\/|at (?:file:\/\/)?\//.test(frame));
  const location = caller ? /(?:file:\/\/)?(\/[^():]+):(\d+)(?::\d+)?\)?$/.exec(caller.trim()) : null;
  return location ? `${location[1]}:${location[2]}` : undefined;
}

export function isAgentDefinition(value: unknown): value is AgentDefinition {
  return typeof value === "object" && value !== null && (value as Record<PropertyKey, unknown>)[AGENT_BRAND] === true;
}

function runtimeOf(options: AgentOptions, problems: string[]): AgentDefinition["runtime"] | undefined {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  if (!Number.isInteger(maxSteps) || maxSteps < 1 || maxSteps > 50) problems.push(`maxSteps must be a whole number from 1 to 50 (got ${String(options.maxSteps)})`);
  if (options.agent !== undefined) {
    if (options.model !== undefined || options.tools !== undefined) problems.push("give either agent (your Mastra agent, with its own model and tools) or model/tools, not both");
    if (typeof options.agent?.generate !== "function") problems.push("agent must be a Mastra Agent (an object with a generate method)");
    return { kind: "mastra", agent: options.agent, maxSteps };
  }
  if (options.model !== undefined && (typeof options.model !== "object" || options.model === null || typeof options.model.doGenerate !== "function")) {
    problems.push("model must be an AI SDK language model (an object with doGenerate)");
  }
  return { kind: "model", model: options.model ?? null, tools: options.tools ?? {}, maxSteps };
}

function zodObject(value: unknown, what: string, problems: string[]): z.ZodObject | null {
  const def = (value as { _zod?: { def?: { type?: string } } } | undefined)?._zod?.def;
  if (def?.type !== "object") {
    problems.push(`${what} must be a zod object schema (z.object({...}) from zod 4)`);
    return null;
  }
  return value as z.ZodObject;
}

function jsonSchemaOf(schema: z.ZodObject, problems: string[]): Record<string, unknown> | null {
  try {
    const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: "draft-2020-12", io: "output" }) as Record<string, unknown>;
    return rest;
  } catch (error) {
    problems.push(`the output schema cannot become JSON Schema (models are asked to follow it, optimizers are told it): ${(error as Error).message}`);
    return null;
  }
}

/** Top-level string enums of the output schema: the closed label sets. */
function enumFields(jsonSchema: Record<string, unknown> | null): Record<string, readonly string[]> {
  const properties = (jsonSchema?.properties ?? {}) as Record<string, { enum?: unknown[] }>;
  return Object.fromEntries(
    Object.entries(properties)
      .filter(([, property]) => Array.isArray(property.enum) && property.enum.length > 0 && property.enum.every((value) => typeof value === "string"))
      .map(([field, property]) => [field, Object.freeze(property.enum!.map(String))]),
  );
}

function promptOf(id: string, options: AgentOptions["prompt"] | undefined, labels: Record<string, readonly string[]>, problems: string[]): AgentDefinition["prompt"] | null {
  if (!options || typeof options !== "object") {
    problems.push("prompt is required: {components: {instructions: \"…\"}} or {instructions: \"…\"}");
    return null;
  }
  if ((options.components === undefined) === (options.instructions === undefined)) {
    problems.push("prompt needs exactly one of components (named text components, one of them instructions) and instructions");
    return null;
  }
  const components: Record<string, string> = { ...(options.components ?? { [ROOT_COMPONENT]: options.instructions! }) };
  for (const [name, text] of Object.entries(components)) {
    if (!COMPONENT_NAME.test(name)) problems.push(`prompt component name "${name}" must be letters, digits and _ (a placeholder names it)`);
    if (typeof text !== "string") problems.push(`prompt component "${name}" must be a string`);
  }
  if (typeof components[ROOT_COMPONENT] !== "string" || components[ROOT_COMPONENT].trim() === "") {
    problems.push(`prompt components need a non-empty "${ROOT_COMPONENT}" (the system prompt)`);
    return null;
  }
  const examplesComponent = options.examples === false ? null : (options.examples ?? DEFAULT_EXAMPLES_COMPONENT);
  if (examplesComponent !== null && !COMPONENT_NAME.test(examplesComponent)) problems.push(`prompt.examples "${examplesComponent}" is not a component name`);
  // Demonstrations need a place in the system prompt: a missing examples component is added, placed last.
  if (examplesComponent !== null && components[examplesComponent] === undefined) {
    components[examplesComponent] = "";
    if (!placeholdersOf(components[ROOT_COMPONENT]).includes(examplesComponent)) components[ROOT_COMPONENT] = `${components[ROOT_COMPONENT].trimEnd()}\n\n{{${examplesComponent}}}`;
  }
  if (examplesComponent !== null && placeholdersOf(components[examplesComponent]!).length > 0) problems.push(`the examples component "${examplesComponent}" must not contain placeholders`);
  const used = placeholdersOf(components[ROOT_COMPONENT]);
  const dangling = used.filter((name) => components[name] === undefined);
  if (dangling.length > 0) problems.push(`"${ROOT_COMPONENT}" uses ${dangling.map((name) => `{{${name}}}`).join(", ")} but the prompt has no such component`);
  const requiredPlaceholders = [...(options.placeholders ?? used)];
  const missing = requiredPlaceholders.filter((name) => !used.includes(name));
  if (missing.length > 0) problems.push(`the seed prompt's "${ROOT_COMPONENT}" is missing the required placeholder${missing.length > 1 ? "s" : ""} ${missing.map((name) => `{{${name}}}`).join(", ")}`);
  if (examplesComponent !== null && !requiredPlaceholders.includes(examplesComponent) && used.includes(examplesComponent)) requiredPlaceholders.push(examplesComponent);

  const labelComponents = { ...(options.labels ?? {}) };
  for (const [field, component] of Object.entries(labelComponents)) {
    const set = labels[field];
    if (!set) {
      problems.push(`prompt.labels names "${field}", which is not a string enum of the output (label fields: ${Object.keys(labels).join(", ") || "none"})`);
      continue;
    }
    const text = components[component];
    if (text === undefined) {
      problems.push(`prompt.labels.${field}: no component "${component}"`);
      continue;
    }
    const lines = text.split("\n").map((line) => /^\s*-\s*([^:]+?)\s*:/.exec(line)?.[1]).filter((label): label is string => label !== undefined);
    const wrong = set.filter((label) => lines.filter((line) => line === label).length !== 1);
    if (wrong.length > 0) problems.push(`prompt.labels.${field}: component "${component}" needs exactly one "- <label>: <description>" line for ${wrong.map((label) => `"${label}"`).join(", ")}`);
  }
  const labelTargets = Object.values(labelComponents);
  if (new Set(labelTargets).size !== labelTargets.length) problems.push("prompt.labels: each label field needs its own component");
  if (examplesComponent !== null && labelTargets.includes(examplesComponent)) problems.push(`prompt.labels: the examples component "${examplesComponent}" cannot hold label lines`);

  const names = Object.keys(components);
  const editable = [...(options.editable ?? names)];
  const unknown = editable.filter((name) => !names.includes(name));
  if (unknown.length > 0) problems.push(`prompt.editable names ${unknown.map((name) => `"${name}"`).join(", ")}, not components of the prompt (${names.join(", ")})`);
  const resource = options.resource ?? id;
  if (!AGENT_ID.test(resource)) problems.push(`prompt.resource must be 1-63 letters, digits, ".", "_" or "-" (got ${JSON.stringify(options.resource)})`);
  return {
    resource,
    seed: { engine: "placeholders", components },
    editable,
    requiredPlaceholders,
    labelComponents,
    examplesComponent,
  };
}

function datasetsOf(datasets: Record<string, string | URL>, problems: string[]): Record<string, string> {
  const resolved: Record<string, string> = {};
  for (const [name, location] of Object.entries(datasets)) {
    const path = location instanceof URL ? fileURLToPath(location) : location;
    if (typeof path !== "string" || !isAbsolute(path)) {
      problems.push(`datasets.${name} must be an absolute path or a file URL, e.g. new URL("./data/${name}.jsonl", import.meta.url)`);
      continue;
    }
    try {
      if (!statSync(path).isFile()) problems.push(`datasets.${name}: ${path} is not a file`);
    } catch {
      problems.push(`datasets.${name}: ${path} does not exist`);
    }
    resolved[name] = path;
  }
  return resolved;
}

function messageOf(message: ((input: Record<string, unknown>) => string) | undefined, inputSchema: z.ZodObject, problems: string[]): ((input: Record<string, unknown>) => string) | null {
  if (message !== undefined) {
    if (typeof message !== "function") problems.push("message must be a function from an input to the user message");
    return (input) => String(message(input));
  }
  const strings = Object.entries(inputSchema.shape).filter(([, field]) => (field as { _zod?: { def?: { type?: string } } })._zod?.def?.type === "string");
  const only = strings.length === 1 && Object.keys(inputSchema.shape).length === 1 ? strings[0]![0] : undefined;
  return only ? (input) => String(input[only] ?? "") : (input) => JSON.stringify(input);
}

/** Ground truth: the output's fields, each optional; fields with a one-of matcher may list several acceptable answers. */
function expectedOf(expected: z.ZodObject | undefined, output: z.ZodObject | null, specs: (ScorerSpec | undefined)[], problems: string[]): z.ZodObject | null {
  if (expected !== undefined) return zodObject(expected, "expected", problems)?.partial().strict() ?? null;
  if (!output) return z.object({ text: z.string() }).partial().strict();
  const alternatives = new Set(specs.flatMap((spec) => spec?.alternativesFields ?? []));
  const shape = Object.fromEntries(
    Object.entries(output.shape).map(([field, schema]) => {
      const one = schema as z.ZodType;
      return [field, alternatives.has(field) ? z.union([one, z.array(one).min(1)]) : one];
    }),
  );
  return z.object(shape).partial().strict();
}

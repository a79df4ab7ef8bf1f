import { z } from "zod";
import { InvalidInputError } from "../store/errors.ts";
import type { PromptContent } from "../store/schema.ts";
import { placeholdersOf, ROOT_COMPONENT } from "./prompt-template.ts";
import type { AgentDefinition } from "./types.ts";

/** Generous for a system prompt, small enough that one version always fits a 64 KiB request body. */
export const PROMPT_LIMITS = { componentChars: 16_000, totalChars: 48_000 } as const;

export const PROMPT_ENGINES = ["placeholders"] as const;

const COMPONENT_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const contentShape = z
  .object({
    engine: z.string(),
    components: z.record(z.string(), z.string()),
  })
  .strict();

/**
 * The one check every publish goes through (CLI, HTTP, a cycle's deploy): the content has a known
 * engine, every component the agent reads is present (and non-empty where its seed is), label lines
 * name each label once,
 * no component or the whole is over the size limits, and `instructions` still has every placeholder
 * the agent needs and none naming a missing component. Throws InvalidInputError with every reason.
 */
export function validatePromptContent(agent: AgentDefinition, content: unknown): PromptContent {
  const parsed = contentShape.safeParse(content);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${["content", ...issue.path].join(".")}: ${issue.message}`);
    throw invalid(agent, problems);
  }
  const { engine, components } = parsed.data;
  const problems: string[] = [];
  if (!(PROMPT_ENGINES as readonly string[]).includes(engine)) problems.push(`unknown engine "${engine}" (known: ${PROMPT_ENGINES.join(", ")})`);

  const examples = agent.prompt.examplesComponent;
  const seed = agent.prompt.seed.components;
  const needed = new Set([ROOT_COMPONENT, ...agent.prompt.requiredPlaceholders, ...Object.values(agent.prompt.labelComponents), ...(examples === null ? [] : [examples])]);
  for (const name of needed) {
    const text = components[name];
    if (text === undefined) problems.push(`component "${name}" is missing`);
    // Only what the agent's own seed fills must stay filled: demonstrations, say, may be empty.
    else if (text.trim() === "" && (seed[name] ?? "").trim() !== "") problems.push(`component "${name}" is empty`);
  }
  for (const [field, component] of Object.entries(agent.prompt.labelComponents)) {
    const text = components[component];
    if (text === undefined) continue;
    const described = text.split("\n").map((line) => /^\s*-\s*([^:]+?)\s*:/.exec(line)?.[1]);
    const wrong = (agent.labels[field] ?? []).filter((label) => described.filter((name) => name === label).length !== 1);
    if (wrong.length > 0) problems.push(`component "${component}" needs exactly one "- <label>: <description>" line for ${wrong.map((label) => `"${label}"`).join(", ")}`);
  }
  let total = 0;
  for (const [name, text] of Object.entries(components)) {
    if (!COMPONENT_NAME.test(name)) problems.push(`component name "${name}" must be letters, digits and _ (a placeholder has to be able to name it)`);
    if (text.length > PROMPT_LIMITS.componentChars) problems.push(`component "${name}" has ${text.length} characters (at most ${PROMPT_LIMITS.componentChars})`);
    total += text.length;
  }
  if (total > PROMPT_LIMITS.totalChars) problems.push(`the components have ${total} characters in all (at most ${PROMPT_LIMITS.totalChars})`);

  const root = components[ROOT_COMPONENT];
  if (root !== undefined) {
    const used = placeholdersOf(root);
    const dropped = agent.prompt.requiredPlaceholders.filter((name) => !used.includes(name));
    if (dropped.length > 0) problems.push(`"${ROOT_COMPONENT}" lost placeholder${dropped.length > 1 ? "s" : ""} ${dropped.map((name) => `{{${name}}}`).join(", ")} the agent needs`);
    const dangling = used.filter((name) => components[name] === undefined && !dropped.includes(name));
    if (dangling.length > 0) problems.push(`"${ROOT_COMPONENT}" uses ${dangling.map((name) => `{{${name}}}`).join(", ")} but no such component exists`);
  }
  if (problems.length > 0) throw invalid(agent, problems);
  return { engine: engine as PromptContent["engine"], components };
}

function invalid(agent: AgentDefinition, problems: string[]): InvalidInputError {
  return new InvalidInputError(`Invalid prompt for resource "${agent.prompt.resource}": ${problems.join("; ")}. Nothing was published.`);
}

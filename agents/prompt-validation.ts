import { z } from "zod";
import { InvalidInputError, NotFoundError } from "../store/errors.ts";
import type { PromptContent } from "../store/schema.ts";
import { placeholdersOf, ROOT_COMPONENT } from "./prompt-template.ts";
import { listAgents } from "./registry.ts";
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

/** The agent whose prompt lives in resource `name`; resources belong to agents through `agent.prompt.resource`. */
export function agentForResource(name: string): AgentDefinition {
  const agent = listAgents().find((candidate) => candidate.prompt.resource === name);
  if (!agent) {
    const known = listAgents().map((candidate) => candidate.prompt.resource);
    throw new NotFoundError(`No agent uses a prompt resource named "${name}". Known resources: ${known.join(", ")}.`);
  }
  return agent;
}

/**
 * The one check every publish goes through (CLI, HTTP, a cycle's deploy): the content has a known
 * engine, every component the agent reads is present and non-empty (its examples may be empty),
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
  const needed = new Set([ROOT_COMPONENT, ...agent.prompt.requiredPlaceholders, ...Object.values(agent.prompt.labelComponents), examples]);
  for (const name of needed) {
    const text = components[name];
    if (text === undefined) problems.push(`component "${name}" is missing`);
    else if (name !== examples && text.trim() === "") problems.push(`component "${name}" is empty`);
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

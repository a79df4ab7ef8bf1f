import type { PromptContent } from "../store/schema.ts";

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** The component the agent's system prompt is rendered from; the others fill its placeholders. */
export const ROOT_COMPONENT = "instructions";

export function placeholdersOf(text: string): string[] {
  return [...new Set([...text.matchAll(PLACEHOLDER)].map((match) => match[1]!))];
}

/**
 * Renders `instructions`, replacing each `{{name}}` with the component of that name. One level deep on
 * purpose: a component's own text is inserted verbatim, so a post or example containing braces cannot
 * inject placeholders.
 */
export function renderPrompt(content: PromptContent): string {
  const root = content.components[ROOT_COMPONENT];
  if (root === undefined) throw new Error(`Prompt content has no "${ROOT_COMPONENT}" component.`);
  return root
    .replace(PLACEHOLDER, (_, name: string) => content.components[name] ?? "")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

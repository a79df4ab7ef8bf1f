import { setTimeout as sleep } from "node:timers/promises";
import type { LanguageModelV2 } from "@ai-sdk/provider";
import { readDemonstrations } from "./demonstrations.ts";
import { responseSchema, textModel } from "./text-model.ts";

const STOPWORDS = new Set(
  "the and for are but not you your with this that from have has had was were our out all any can its it's just about into than then them they their there what when which who will would could should been being over more most some such very also only own same other one two new get got how why off too yet per via".split(
    " ",
  ),
);

export function words(text: string): string[] {
  return (text.toLowerCase().match(/[a-z0-9]+/g) ?? []).filter((word) => word.length >= 3 && !STOPWORDS.has(word));
}

interface Demonstration {
  words: Set<string>;
  /** The answer as the demonstration writes it: a JSON object, or a text. */
  answer: Record<string, unknown> | string;
}

/**
 * A deterministic FAKE model for tests and benchmarks: no language model at all. It answers by reading
 * the prompt the way an instruction-following model would:
 * - a closed label field (a string enum of the requested JSON schema): every `- label: description`
 *   line of the system prompt lends its words to that label, and every demonstration (a message line
 *   followed by `Answer: …`) votes for its labels when it shares words with the message. Ties go to the
 *   label listed first; with no evidence it answers the label listed last (the "anything else" slot);
 * - any other field: the value of the demonstration sharing the most words with the message (at least
 *   two), else an empty value of the field's type;
 * - a free-text answer (no schema): the closest demonstration's answer, else the first words of the message.
 * A better prompt therefore really gives better answers, which is what lets tests and benchmarks see the
 * loop learn without a real model.
 */
export function fakeKeywordModel(options: { latencyMs?: number } = {}): LanguageModelV2 {
  return textModel("fake", "fake-keyword", async (turns, callOptions) => {
    if (options.latencyMs) await sleep(options.latencyMs, undefined, { signal: callOptions.abortSignal });
    const system = turns.filter((turn) => turn.role === "system").map((turn) => turn.text).join("\n");
    const message = turns.findLast((turn) => turn.role === "user")?.text ?? "";
    const schema = responseSchema(callOptions);
    const text = schema ? JSON.stringify(answerObject(system, message, schema)) : answerText(system, message);
    return { text, inputTokens: words(system).length + words(message).length, outputTokens: words(text).length + 2 };
  });
}

/** The words a message is compared by, without a leading `Label:` its agent puts before every input. */
function messageWords(message: string): Set<string> {
  return new Set(words(message.replace(/^\s*[A-Za-z][\w ]{0,20}:\s*/, "")));
}

function answerObject(system: string, message: string, schema: Record<string, unknown>): Record<string, unknown> {
  const messageSet = messageWords(message);
  const demonstrations = parseDemonstrations(system);
  const closest = closestDemonstration(demonstrations, messageSet);
  const properties = (schema.properties ?? {}) as Record<string, { enum?: unknown[]; type?: unknown }>;
  const answer: Record<string, unknown> = {};
  for (const [field, property] of Object.entries(properties)) {
    if (Array.isArray(property.enum) && property.enum.every((value) => typeof value === "string")) {
      answer[field] = classify(system, messageSet, demonstrations, field, property.enum as string[]);
      continue;
    }
    const shown = closest && typeof closest.answer === "object" ? closest.answer[field] : undefined;
    answer[field] = shown !== undefined && typeMatches(shown, property.type) ? shown : emptyValue(property.type);
  }
  return answer;
}

function answerText(system: string, message: string): string {
  const closest = closestDemonstration(parseDemonstrations(system), messageWords(message));
  if (closest && typeof closest.answer === "string") return closest.answer;
  return `Re: ${message.trim().split(/\s+/).slice(0, 12).join(" ")}`;
}

function classify(system: string, messageSet: Set<string>, demonstrations: Demonstration[], field: string, labels: string[]): string {
  const described = describedLabels(system, labels);
  const order = described.length > 0 ? described.map((entry) => entry.label) : labels;
  const scores = new Map(order.map((label) => [label, 0]));
  for (const { label, keywords } of described) {
    scores.set(label, (scores.get(label) ?? 0) + [...keywords].filter((word) => messageSet.has(word)).length);
  }
  for (const demonstration of demonstrations) {
    if (typeof demonstration.answer !== "object") continue;
    const label = String(demonstration.answer[field] ?? "");
    if (!scores.has(label)) continue;
    const shared = [...demonstration.words].filter((word) => messageSet.has(word)).length;
    if (shared >= 2) scores.set(label, scores.get(label)! + shared * 0.75);
  }
  const best = Math.max(...scores.values());
  return best > 0 ? order.find((label) => scores.get(label) === best)! : order.at(-1)!;
}

function closestDemonstration(demonstrations: Demonstration[], messageSet: Set<string>): Demonstration | undefined {
  let best: Demonstration | undefined;
  let bestShared = 1;
  for (const demonstration of demonstrations) {
    const shared = [...demonstration.words].filter((word) => messageSet.has(word)).length;
    if (shared > bestShared) [best, bestShared] = [demonstration, shared];
  }
  return best;
}

function typeMatches(value: unknown, type: unknown): boolean {
  if (type === "array") return Array.isArray(value);
  if (type === "integer") return Number.isInteger(value);
  if (type === "object") return typeof value === "object" && value !== null && !Array.isArray(value);
  return typeof type !== "string" || typeof value === type;
}

function emptyValue(type: unknown): unknown {
  switch (type) {
    case "number":
    case "integer":
      return 0;
    case "boolean":
      return false;
    case "array":
      return [];
    case "object":
      return {};
    default:
      return "";
  }
}

function describedLabels(system: string, labels: string[]): { label: string; keywords: Set<string> }[] {
  const found: { label: string; keywords: Set<string>; line: number }[] = [];
  system.split("\n").forEach((line, index) => {
    const match = /^\s*-\s*([A-Za-z_][\w-]*)\s*:\s*(.*)$/.exec(line);
    if (match && labels.includes(match[1]!) && !found.some((entry) => entry.label === match[1])) {
      found.push({ label: match[1]!, keywords: new Set(words(match[2]!)), line: index });
    }
  });
  return found.sort((a, b) => a.line - b.line);
}

function parseDemonstrations(system: string): Demonstration[] {
  return readDemonstrations(system).map(({ message, answer }) => ({ words: messageWords(message), answer }));
}

import { setTimeout as sleep } from "node:timers/promises";
import type { LanguageModelV2, LanguageModelV2FunctionTool } from "@ai-sdk/provider";
import { readDemonstrations } from "./demonstrations.ts";
import { extractable, extractField } from "./fake-extraction.ts";
import { writeReply } from "./fake-reply.ts";
import { type ModelToolCall, offeredTools, responseSchema, textModel, type ToolResult } from "./text-model.ts";

const STOPWORDS = new Set(
  "the and for are but not you your with this that from have has had was were our out all any can its it's just about into than then them they their there what when which who will would could should been being over more most some such very also only own same other one two new get got how why off too yet per via".split(
    " ",
  ),
);

export function words(text: string): string[] {
  return (text.toLowerCase().match(/[a-z0-9]+/g) ?? []).filter((word) => word.length >= 3 && !STOPWORDS.has(word));
}

interface Demonstration {
  /** The demonstration's message line, as the prompt shows it. */
  message: string;
  words: Set<string>;
  /** The answer as the demonstration writes it: a JSON object, or a text. */
  answer: Record<string, unknown> | string;
}

/**
 * A deterministic FAKE model for tests and benchmarks: no language model at all. It answers by reading
 * the prompt the way an instruction-following model would, and reads nothing else: the system prompt,
 * the user message and the results of the tools it called (never a task's ground truth).
 * - Tools: when the request offers tools and the conversation holds no tool result yet, it calls one:
 *   the first tool whose every required argument it finds in the message (tools whose name and
 *   description share the most words with the message first). A string argument is the first word
 *   matching the schema's `pattern`, else the value of a `Key: value` line whose key names the
 *   argument ("Order: A-1042" for `orderId`), else one of its `enum` values the message contains; a
 *   number, the value of such a line or the message's first number. Then it answers: a free-text
 *   answer is written from the result (below); a structured one does not read it.
 * - A closed label field (a string enum of the requested JSON schema): every `- label: description`
 *   line of the system prompt lends its words to that label, and every demonstration (a message line
 *   followed by `Answer: …`) votes for its labels when it shares words with the message (words most of
 *   three or more demonstrations contain, the task's own vocabulary, do not count). Ties go to the
 *   label listed first; with no evidence it answers the label listed last (the "anything else" slot).
 *   A label name with a part too short to be a keyword (`series-a`) is answered outright when the
 *   message writes it out ("Series A").
 * - Any other string, number or string-array field: extracted from the message by a pattern it induces
 *   from the demonstrations showing that field (see fake-extraction.ts): the contexts in which their
 *   values appear in their messages pick the candidates (name-like spans, amounts of money) of this
 *   message. With no demonstration, a zero-shot guess: the first name-like span, the first amount, every
 *   name-like span but the first. Demonstrations whose values are not in their messages are copied
 *   instead: the value of the one sharing the most words with the message (at least two).
 * - A free-text answer after a tool result: a reply built from the result's facts, shaped by the closest
 *   demonstration's reply and by instructions to greet the customer by name or stay under N words
 *   (see fake-reply.ts). Without a tool result: the closest demonstration's answer, else the first words
 *   of the message.
 * A better prompt therefore really gives better answers, which is what lets tests and benchmarks see the
 * loop learn without a real model.
 */
export function fakeKeywordModel(options: { latencyMs?: number } = {}): LanguageModelV2 {
  return textModel("fake", "fake-keyword", async (turns, callOptions) => {
    if (options.latencyMs) await sleep(options.latencyMs, undefined, { signal: callOptions.abortSignal });
    const system = turns.filter((turn) => turn.role === "system").map((turn) => turn.text).join("\n");
    const message = turns.findLast((turn) => turn.role === "user")?.text ?? "";
    const results = turns.flatMap((turn) => turn.toolResults ?? []);
    const read = words(system).length + words(message).length + results.reduce((sum, result) => sum + words(JSON.stringify(result.result)).length, 0);
    const tools = offeredTools(callOptions);
    const call = tools.length > 0 && results.length === 0 ? toolCallFor(tools, message) : undefined;
    if (call) return { text: "", toolCalls: [call], inputTokens: read, outputTokens: words(JSON.stringify(call.args)).length + 2 };
    const schema = responseSchema(callOptions);
    const text = schema ? JSON.stringify(answerObject(system, message, schema)) : answerText(system, message, results);
    return { text, inputTokens: read, outputTokens: words(text).length + 2 };
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
  const properties = (schema.properties ?? {}) as Record<string, { enum?: unknown[]; type?: unknown; items?: { type?: unknown } }>;
  const labelNames = Object.values(properties).flatMap((property) => (Array.isArray(property.enum) ? property.enum.filter((value): value is string => typeof value === "string") : []));
  const isLabel = (text: string) => labelNames.some((label) => namePattern(label).test(text) && normalizeLabel(text) === normalizeLabel(label));
  const answer: Record<string, unknown> = {};
  for (const [field, property] of Object.entries(properties)) {
    if (Array.isArray(property.enum) && property.enum.every((value) => typeof value === "string")) {
      answer[field] = classify(system, message, messageSet, demonstrations, field, property.enum as string[]);
      continue;
    }
    const extracted = extractable(property) ? extractField(field, property, message, demonstrations, isLabel) : undefined;
    if (extracted !== undefined) {
      answer[field] = extracted;
      continue;
    }
    const shown = closest && typeof closest.answer === "object" ? closest.answer[field] : undefined;
    answer[field] = shown !== undefined && typeMatches(shown, property.type) ? shown : emptyValue(property.type);
  }
  return answer;
}

function answerText(system: string, message: string, results: ToolResult[]): string {
  const closest = closestDemonstration(
    parseDemonstrations(system).filter((demonstration) => typeof demonstration.answer === "string"),
    messageWords(message),
  );
  if (results.length > 0) return writeReply(system, message, results, closest && { message: closest.message, answer: closest.answer as string });
  if (closest) return closest.answer as string;
  return `Re: ${message.trim().split(/\s+/).slice(0, 12).join(" ")}`;
}

function classify(system: string, message: string, messageSet: Set<string>, demonstrations: Demonstration[], field: string, labels: string[]): string {
  const named = labels.filter((label) => shortPartedName(label) && namePattern(label).test(message));
  if (named.length === 1) return named[0]!;
  const described = describedLabels(system, labels);
  const order = described.length > 0 ? described.map((entry) => entry.label) : labels;
  const scores = new Map(order.map((label) => [label, 0]));
  for (const { label, keywords } of described) {
    scores.set(label, (scores.get(label) ?? 0) + [...keywords].filter((word) => messageSet.has(word)).length);
  }
  const common = wordsMostShare(demonstrations);
  for (const demonstration of demonstrations) {
    if (typeof demonstration.answer !== "object") continue;
    const label = String(demonstration.answer[field] ?? "");
    if (!scores.has(label)) continue;
    const shared = [...demonstration.words].filter((word) => messageSet.has(word) && !common.has(word)).length;
    if (shared >= 2) scores.set(label, scores.get(label)! + shared * 0.75);
  }
  const best = Math.max(...scores.values());
  return best > 0 ? order.find((label) => scores.get(label) === best)! : order.at(-1)!;
}

/**
 * Words more than half of three or more demonstrations contain: the task's own vocabulary ("raised",
 * "million" in every funding announcement) says nothing about which demonstration a message resembles.
 */
function wordsMostShare(demonstrations: Demonstration[]): Set<string> {
  if (demonstrations.length < 3) return new Set();
  const counts = new Map<string, number>();
  for (const demonstration of demonstrations) for (const word of demonstration.words) counts.set(word, (counts.get(word) ?? 0) + 1);
  return new Set([...counts].filter(([, count]) => count > demonstrations.length / 2).map(([word]) => word));
}

/** A label whose name has a part under three letters ("series-a"): its words alone cannot tell it from its siblings. */
function shortPartedName(label: string): boolean {
  const parts = label.split(/[-_\s]+/);
  return parts.length > 1 && parts.some((part) => part.length < 3);
}

/** "Series A", "series-a" and "series_a" alike. */
function normalizeLabel(text: string): string {
  return text.toLowerCase().replace(/[-_\s]+/g, " ").trim();
}

/** The label's name written out in a text: "series-a" matches "Series A", "series-a" and "SERIES A". */
function namePattern(label: string): RegExp {
  const parts = label.split(/[-_\s]+/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`(?<![\\p{L}\\p{N}])${parts.join("[-_\\s]+")}(?![\\p{L}\\p{N}])`, "iu");
}

/**
 * The tool to call and its arguments, or undefined when no offered tool gets every required argument
 * from the message (the model then answers without one).
 */
function toolCallFor(tools: LanguageModelV2FunctionTool[], message: string): ModelToolCall | undefined {
  const messageSet = new Set(words(message));
  const relevance = (tool: LanguageModelV2FunctionTool) => words(`${splitCamel(tool.name)} ${tool.description ?? ""}`).filter((word) => messageSet.has(word)).length;
  const ranked = tools.map((tool, index) => ({ tool, index, relevance: relevance(tool) })).sort((a, b) => b.relevance - a.relevance || a.index - b.index);
  for (const { tool } of ranked) {
    const args = argumentsFor(tool.inputSchema as Record<string, unknown>, message);
    if (args) return { name: tool.name, args };
  }
  return undefined;
}

interface ArgumentSchema {
  type?: unknown;
  pattern?: string;
  enum?: unknown[];
}

function argumentsFor(schema: Record<string, unknown>, message: string): Record<string, unknown> | undefined {
  const properties = (schema.properties ?? {}) as Record<string, ArgumentSchema>;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const args: Record<string, unknown> = {};
  for (const [name, property] of Object.entries(properties)) {
    const value = argumentFrom(name, property, message);
    if (value !== undefined) args[name] = value;
    else if (required.has(name)) return undefined;
  }
  return args;
}

function argumentFrom(name: string, property: ArgumentSchema, message: string): unknown {
  const header = headerValue(name, message);
  if (property.type === "number" || property.type === "integer") {
    const number = /-?\d+(?:\.\d+)?/.exec(header ?? message)?.[0];
    return number === undefined ? undefined : property.type === "integer" ? Math.round(Number(number)) : Number(number);
  }
  if (property.type !== "string") return undefined;
  if (property.pattern) {
    // A token of the message that matches the pattern as a whole (JSON Schema patterns are unanchored; an id is a whole word).
    const whole = new RegExp(`^(?:${property.pattern.replace(/^\^/, "").replace(/\$$/, "")})$`);
    return message
      .split(/[\s,;:()"'“”]+/)
      .map((token) => token.replace(/[.!?]+$/, ""))
      .find((token) => whole.test(token));
  }
  if (header !== undefined) return header;
  return property.enum?.find((option) => typeof option === "string" && namePattern(option).test(message));
}

/** The value of the message's `Key: value` line whose key names the argument: "Order: A-1" or "Order id: A-1" for orderId. */
function headerValue(name: string, message: string): string | undefined {
  const argument = splitCamel(name).toLowerCase().split(" ").filter((word) => word !== "id");
  for (const line of message.split("\n")) {
    const match = /^\s*([A-Za-z][A-Za-z _-]{0,30}?)\s*:\s*(\S.*?)\s*$/.exec(line);
    if (!match) continue;
    const key = match[1]!.toLowerCase().split(/[\s_-]+/).filter((word) => word !== "id");
    if (key.length > 0 && (key.every((word) => argument.includes(word)) || argument.every((word) => key.includes(word)))) return match[2]!;
  }
  return undefined;
}

function splitCamel(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/[_-]+/g, " ");
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
  return readDemonstrations(system).map(({ message, answer }) => ({ message, words: messageWords(message), answer }));
}

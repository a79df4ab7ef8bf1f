import { createHash } from "node:crypto";
import type { LanguageModelV2 } from "@ai-sdk/provider";
import { readDemonstrations, type WrittenDemonstration } from "./demonstrations.ts";
import { responseSchema, textModel } from "./text-model.ts";

/** A free-text answer when no demonstration resembles the message. */
const DEFAULT_TEXT = "I don't know.";

interface Demonstration {
  tokens: Set<string>;
  answer: WrittenDemonstration["answer"];
}

/**
 * A deterministic FAKE model for tests: a nearest-neighbour reader of few-shot examples, and nothing else.
 * It finds the demonstrations in the system prompt (a message line, then `Answer: …`), picks the one whose
 * words overlap the user's message most (cosine similarity of word sets, rare words weighing more; ties go
 * to the one shown first) and answers with that demonstration's answer.
 * With no demonstration, or none sharing a word, it guesses: each label field gets a label picked by a hash
 * of the message (fixed per message, right by chance only), other fields an empty value. A guess rather than
 * one constant: bootstrapped demonstrations are the runs that scored best, and a model answering a constant
 * would only ever be shown that constant.
 * Instructions and label descriptions are ignored and it knows no word lists, so unlike `fake-keyword` it
 * rewards no particular wording: only demonstrations that resemble the messages it is asked about help it,
 * which is what makes a lift on unseen tasks mean something.
 */
export function fakeNearestNeighbourModel(): LanguageModelV2 {
  return textModel("fake", "fake-nearest-neighbour", async (turns, callOptions) => {
    const system = turns.filter((turn) => turn.role === "system").map((turn) => turn.text).join("\n");
    const message = turns.findLast((turn) => turn.role === "user")?.text ?? "";
    const nearest = nearestDemonstration(parseDemonstrations(system), tokensOf(message));
    const schema = responseSchema(callOptions);
    const text = schema ? JSON.stringify(answerObject(nearest, schema, message)) : typeof nearest?.answer === "string" ? nearest.answer : DEFAULT_TEXT;
    return { text, inputTokens: tokensOf(system).size + tokensOf(message).size, outputTokens: tokensOf(text).size + 2 };
  });
}

/** Lower-cased words of three letters or more ("a", "to", "of" make any two texts look alike); no stopword list. */
function tokensOf(text: string): Set<string> {
  return new Set((text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((word) => word.length >= 3));
}

/**
 * Cosine similarity of word sets, each word weighted by how rare it is among the demonstrations (inverse
 * document frequency): a word every demonstration has (a `Post:` lead, "the") says nothing about which is nearest.
 */
function nearestDemonstration(demonstrations: Demonstration[], message: Set<string>): Demonstration | undefined {
  const documentFrequency = new Map<string, number>();
  for (const demonstration of demonstrations) for (const token of demonstration.tokens) documentFrequency.set(token, (documentFrequency.get(token) ?? 0) + 1);
  const weight = (token: string) => Math.log((demonstrations.length + 1) / ((documentFrequency.get(token) ?? 0) + 1));
  const norm = (tokens: Set<string>) => Math.sqrt([...tokens].reduce((sum, token) => sum + weight(token) ** 2, 0));
  const messageNorm = norm(message);
  let nearest: Demonstration | undefined;
  let bestSimilarity = 0;
  for (const demonstration of demonstrations) {
    const shared = [...demonstration.tokens].filter((token) => message.has(token)).reduce((sum, token) => sum + weight(token) ** 2, 0);
    const similarity = shared / (norm(demonstration.tokens) * messageNorm || 1);
    if (similarity > bestSimilarity) [nearest, bestSimilarity] = [demonstration, similarity];
  }
  return nearest;
}

/** Every field of the schema: the nearest demonstration's value where it fits the field, else a guess. */
function answerObject(nearest: Demonstration | undefined, schema: Record<string, unknown>, message: string): Record<string, unknown> {
  const properties = (schema.properties ?? {}) as Record<string, { enum?: unknown[]; type?: unknown }>;
  const shown = typeof nearest?.answer === "object" ? nearest.answer : {};
  return Object.fromEntries(
    Object.entries(properties).map(([field, property]) => {
      const value = shown[field];
      const fits = Array.isArray(property.enum) ? property.enum.includes(value) : value !== undefined && typeFits(value, property.type);
      return [field, fits ? value : guess(property, `${field}\u0000${message}`)];
    }),
  );
}

function typeFits(value: unknown, type: unknown): boolean {
  if (type === "array") return Array.isArray(value);
  if (type === "null") return value === null;
  if (type === "integer") return Number.isInteger(value);
  if (type === "object") return typeof value === "object" && value !== null && !Array.isArray(value);
  return typeof type !== "string" || typeof value === type;
}

function guess(property: { enum?: unknown[]; type?: unknown }, seed: string): unknown {
  if (Array.isArray(property.enum)) return property.enum[createHash("sha256").update(seed).digest().readUInt32BE(0) % property.enum.length];
  return { number: 0, integer: 0, boolean: false, array: [], object: {}, null: null }[String(property.type)] ?? "";
}

function parseDemonstrations(system: string): Demonstration[] {
  return readDemonstrations(system).map(({ message, answer }) => ({ tokens: tokensOf(message), answer }));
}

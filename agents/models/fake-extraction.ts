/**
 * How the FAKE keyword model fills the fields of a structured answer that are not closed label sets:
 * span extraction whose pattern it induces from the demonstrations in its prompt, as in-context
 * learning would. A real model sees "led by X with participation from Y" twice and picks the
 * investors of a third announcement; this fake does the same by counting the contexts (the words
 * around a value) in which the demonstrated values occur in their messages, then choosing, in the new
 * message, the candidates whose contexts look most like those.
 */
import { normalizeText } from "../../scorers/matchers.ts";

/** A span of the message that could be a field's value, with the words around it. */
interface Candidate {
  text: string;
  /** A name run without its sentence-opening first word ("Ambit Bio" of "Today Ambit Bio"): a second reading of the same words. */
  variant?: boolean;
  /** For money mentions: the amount, scale word applied. */
  value?: number;
  features: string[];
}

/** The outcome of learning one field from the demonstrations: feature weights and the prior. */
interface Pattern {
  weights: Map<string, number>;
  prior: number;
}

export interface Demonstration {
  message: string;
  answer: Record<string, unknown> | string;
}

const TOKEN = /[$€£]|[\p{L}\p{N}]+(?:['’\-.&][\p{L}\p{N}]+)*|[^\s\p{L}\p{N}]/gu;
const SENTENCE_END = new Set([".", "!", "?", ":", ";", '"', "“", "”", "(", ")"]);
const CONNECTORS = new Set(["&"]);

/** Whether a value of this JSON-schema property is something the fake extracts from the message. */
export function extractable(property: { type?: unknown; items?: { type?: unknown } }): boolean {
  return property.type === "string" || property.type === "number" || property.type === "integer" || (property.type === "array" && property.items?.type === "string");
}

/**
 * The field's value for `message`: learned from the demonstrations that show this field when their
 * values can be found in their messages; with none, the zero-shot guess (the first name-like span,
 * the first amount of money, every other name-like span); undefined when there is nothing to extract
 * or the demonstrations show values that are not in their messages (the caller then copies). A span
 * that `isLabel` (it names one of the answer's labels, "Series B") is no name.
 */
export function extractField(field: string, property: { type?: unknown; maxItems?: unknown }, message: string, demonstrations: Demonstration[], isLabel: (text: string) => boolean): unknown {
  const numeric = property.type === "number" || property.type === "integer";
  const candidatesOf = numeric ? moneyCandidates : (text: string) => nameCandidates(text).filter((candidate) => !isLabel(candidate.text));
  const candidates = candidatesOf(message);
  const shown = demonstrations.filter((demonstration) => typeof demonstration.answer === "object" && demonstration.answer[field] !== undefined);
  let pattern: Pattern | undefined;
  if (shown.length > 0) {
    pattern = learn(shown.map((demonstration) => ({ candidates: candidatesOf(demonstration.message), value: (demonstration.answer as Record<string, unknown>)[field] })));
    if (!pattern) return undefined;
  }
  if (candidates.length === 0) return undefined;
  const value = (candidate: Candidate) => (numeric ? (property.type === "integer" ? Math.round(candidate.value!) : candidate.value!) : candidate.text);
  if (property.type === "array") {
    const chosen = pattern ? candidates.filter((candidate) => score(pattern, candidate) > 0) : candidates.filter((candidate) => !candidate.variant).slice(1);
    const items = [...new Map(chosen.map((candidate) => [normalizeText(candidate.text), candidate.text])).values()];
    return typeof property.maxItems === "number" ? items.slice(0, property.maxItems) : items;
  }
  if (!pattern) return value(candidates[0]!);
  let best = candidates[0]!;
  for (const candidate of candidates) if (score(pattern, candidate) > score(pattern, best)) best = candidate;
  return value(best);
}

/** Naive-Bayes log-odds that a candidate is a value of the field, from the features its context shares with the demonstrated values'. */
function score(pattern: Pattern, candidate: Candidate): number {
  return candidate.features.reduce((sum, feature) => sum + (pattern.weights.get(feature) ?? 0), pattern.prior);
}

/** Counts each feature among the demonstrated values (positives) and the other candidates (negatives); undefined when no value was found. */
function learn(examples: { candidates: Candidate[]; value: unknown }[]): Pattern | undefined {
  const positive = new Map<string, number>();
  const negative = new Map<string, number>();
  let positives = 0;
  let negatives = 0;
  for (const { candidates, value } of examples) {
    for (const candidate of candidates) {
      const isValue = matches(candidate, value);
      const counts = isValue ? positive : negative;
      if (isValue) positives++;
      else negatives++;
      for (const feature of candidate.features) counts.set(feature, (counts.get(feature) ?? 0) + 1);
    }
  }
  if (positives === 0) return undefined;
  const weights = new Map<string, number>();
  for (const feature of new Set([...positive.keys(), ...negative.keys()])) {
    weights.set(feature, Math.log(((positive.get(feature) ?? 0) + 0.5) / (positives + 1)) - Math.log(((negative.get(feature) ?? 0) + 0.5) / (negatives + 1)));
  }
  return { weights, prior: Math.log((positives + 0.5) / (negatives + 0.5)) };
}

function matches(candidate: Candidate, value: unknown): boolean {
  if (candidate.value !== undefined) return typeof value === "number" && Math.abs(candidate.value - value) <= Math.abs(value) * 0.005;
  const items = Array.isArray(value) ? value : [value];
  return items.some((item) => typeof item === "string" && normalizeText(item) === normalizeText(candidate.text));
}

interface Token {
  text: string;
  start: number;
  end: number;
}

function tokenize(text: string): Token[] {
  return [...text.matchAll(TOKEN)].map((match) => ({ text: match[0], start: match.index, end: match.index + match[0].length }));
}

/** A word that can be part of a name: capitalised (each hyphenated part too: "O'Brien", not "Berlin-based"), or a code like "A-1042". */
function nameToken(token: string): boolean {
  return /^\p{Lu}/u.test(token) && token.split(/[-'’]/).every((part) => /^[\p{Lu}\p{N}]/u.test(part));
}

function contextFeatures(tokens: Token[], first: number, last: number): string[] {
  const word = (index: number) => (index < 0 ? "^" : index >= tokens.length ? "$" : tokens[index]!.text.toLowerCase());
  return [`p1:${word(first - 1)}`, `p2:${word(first - 2)} ${word(first - 1)}`, `n1:${word(last + 1)}`, `n2:${word(last + 1)} ${word(last + 2)}`];
}

/**
 * Maximal runs of name words ("Harbor Lights Ventures", "Crumb & Co"); a run opening a sentence also
 * without its first word ("Today Ambit Bio" → "Ambit Bio").
 */
function nameCandidates(message: string): Candidate[] {
  const tokens = tokenize(message);
  const candidates: Candidate[] = [];
  const add = (first: number, last: number, sentenceStart: boolean, variant: boolean) => {
    const length = last - first + 1;
    candidates.push({
      text: message.slice(tokens[first]!.start, tokens[last]!.end),
      ...(variant ? { variant } : {}),
      features: [...contextFeatures(tokens, first, last), `len:${Math.min(length, 3)}`, ...(sentenceStart ? ["start"] : [])],
    });
  };
  for (let index = 0; index < tokens.length; index++) {
    if (!nameToken(tokens[index]!.text)) continue;
    let last = index;
    while (last + 1 < tokens.length && (nameToken(tokens[last + 1]!.text) || (CONNECTORS.has(tokens[last + 1]!.text) && last + 2 < tokens.length && nameToken(tokens[last + 2]!.text)))) last++;
    const opensSentence = index === 0 || SENTENCE_END.has(tokens[index - 1]!.text);
    // A leading "Announcement:" names what follows; it is not part of it.
    const isLead = index === 0 && tokens[last + 1]?.text === ":";
    if (!isLead) add(index, last, opensSentence, false);
    if (opensSentence && last > index) add(index + 1, last, false, true);
    index = last;
  }
  return candidates;
}

const SCALES: Record<string, number> = { k: 1e3, thousand: 1e3, m: 1e6, mn: 1e6, million: 1e6, b: 1e9, bn: 1e9, billion: 1e9 };
const CURRENCIES: Record<string, string> = { $: "usd", us$: "usd", usd: "usd", dollars: "usd", "€": "eur", eur: "eur", euros: "eur", "£": "gbp", gbp: "gbp", pounds: "gbp", sek: "sek" };
const MONEY = /(US\$|\$|€|£|SEK|EUR|GBP|USD)?\s?(\d+(?:,\d{3})+|\d+(?:\.\d+)?)\s?(k|m|mn|bn|b|thousand|million|billion)?\b(?:\s(dollars|USD|euros|EUR|pounds|GBP))?/gi;

/** Amounts of money: a number with a currency or a scale word ("$12M", "12 million dollars", "€30 million", "$750,000"). */
function moneyCandidates(message: string): Candidate[] {
  const tokens = tokenize(message);
  const candidates: Candidate[] = [];
  for (const match of message.matchAll(MONEY)) {
    const [, symbol, digits, scale, word] = match;
    if (!symbol && !scale && !word) continue;
    const currency = CURRENCIES[(symbol ?? word ?? "").toLowerCase()] ?? "none";
    const value = Number(digits!.replace(/,/g, "")) * (scale ? SCALES[scale.toLowerCase()]! : 1);
    const start = match.index;
    const end = start + match[0].length;
    const first = tokens.findIndex((token) => token.end > start);
    const last = tokens.findLastIndex((token) => token.start < end);
    candidates.push({ text: match[0].trim(), value, features: [...contextFeatures(tokens, first, last), `cur:${currency}`, `scale:${scale ? (SCALES[scale.toLowerCase()] ?? 1) : 1}`] });
  }
  return candidates;
}

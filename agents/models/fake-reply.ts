/**
 * How the FAKE keyword model writes a free-text answer once a tool has answered: a reply built from
 * the tool's result, shaped by the closest demonstration in its prompt (its reply template) and by two
 * kinds of instruction it obeys. Deterministic, and it reads nothing but the prompt, the message and
 * the tool results.
 */
import { normalizeText } from "../../scorers/matchers.ts";
import type { ToolResult } from "./text-model.ts";

/** One fact of a tool's result: `trackingNumber: "SW123"` is labelled "Tracking number". */
interface Fact {
  label: string;
  value: string;
}

export interface ReplyDemonstration {
  message: string;
  answer: string;
}

const GREETING = /^(good (?:morning|afternoon|evening)|hello|hi there|hi|hey|dear)\b/i;
const HEADER = /^\s*([A-Za-z][A-Za-z ]{0,30}?)\s*:\s*(\S.*?)\s*$/;
/** A clause the fake itself writes for a fact: `Label: value.` */
const FACT_CLAUSE = /^([A-Z][A-Za-z]*(?: [a-z]+){0,3}): (.+?)([.!?]?)$/;
const GREET_BY_NAME = /\b(?:greet|address|call)\b[^.\n]*\bby (?:their |his or her |the customer'?s? )?(?:first )?name\b|\buse the customer'?s (?:first )?name\b/i;
const WORD_LIMIT = /\b(?:under|at most|no more than|fewer than|a maximum of|maximum)\s+(\d+)\s+words\b/i;

/**
 * The reply to `message` given the tools' results:
 * - with no demonstration that shares at least two words with the message: an opening mirroring the
 *   customer's greeting, when they wrote one ("Hi, …" → "Hi Dana,"; the name from the message's
 *   `Customer:`-style header), then one `Label: value.` clause per fact the message asks about (a fact
 *   whose label shares a word stem with the message), or per fact when it asks about none;
 * - with one: that demonstration's reply as a template: its fact clauses refilled with this result's
 *   values (dropped when this result has no such fact), names and ids it copied from its own message
 *   replaced by what stands in the same place in this message, its other words kept; facts this
 *   message asks about that the template does not mention are added;
 * - instructions in the system prompt to greet the customer by name, or to stay under N words, are obeyed.
 */
export function writeReply(system: string, message: string, results: ToolResult[], closest: ReplyDemonstration | undefined): string {
  const facts = results.flatMap((result) => factsOf(result.result));
  const asked = factsAskedAbout(facts, message);
  let clauses = closest ? adaptTemplate(closest, message, facts, asked) : [...opening(message), ...asked.map(factClause)];
  const name = customerName(message);
  if (name && GREET_BY_NAME.test(system) && !clauses.some((clause) => clause.includes(name))) clauses = [`Hi ${name},`, ...clauses];
  const limit = Number(WORD_LIMIT.exec(system)?.[1] ?? Number.POSITIVE_INFINITY);
  return withinWords(clauses, limit).join(" ");
}

function factsOf(result: unknown, prefix = ""): Fact[] {
  if (result === null || result === undefined) return [];
  if (typeof result !== "object") return [{ label: labelOf(prefix || "result"), value: String(result) }];
  if (Array.isArray(result)) return prefix ? [{ label: labelOf(prefix), value: result.map(String).join(", ") }] : [];
  return Object.entries(result as Record<string, unknown>).flatMap(([key, value]) => factsOf(value, key));
}

/** "trackingNumber" → "Tracking number", "eta" → "Eta", "refund_issued_on" → "Refund issued on". */
function labelOf(key: string): string {
  const words = key
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/[_-]+/g, " ")
    .toLowerCase()
    .trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const stem = (word: string) => word.slice(0, 4);
const stemsOf = (text: string) => new Set(normalizeText(text).split(" ").filter((word) => word.length >= 3).map(stem));

/**
 * The facts whose label shares a word stem with the message, leaving out what the message already says
 * (its own order id); all of them when it asks about none.
 */
function factsAskedAbout(facts: Fact[], message: string): Fact[] {
  const body = stemsOf(messageBody(message));
  const said = ` ${normalizeText(message)} `;
  const news = facts.filter((fact) => !said.includes(` ${normalizeText(fact.value)} `));
  const asked = news.filter((fact) => [...stemsOf(fact.label)].some((word) => body.has(word)));
  return asked.length > 0 ? asked : facts;
}

function factClause(fact: Fact): string {
  return `${fact.label}: ${fact.value}.`;
}

/** The message without its `Key: value` header lines. */
function messageBody(message: string): string {
  return message
    .split("\n")
    .filter((line) => !HEADER.test(line) || line.split(/\s+/).length > 6)
    .join(" ");
}

/** The first name of the person the message is from: the first header whose value is a name (capitalised words, no digits). */
function customerName(message: string): string | undefined {
  for (const line of message.split("\n")) {
    const value = HEADER.exec(line)?.[2];
    // Capitalised words, with lowercase particles between them ("Lotte de Vries").
    if (value && /^\p{Lu}[\p{L}'’-]*(?: (?:\p{Ll}{1,3} )?\p{Lu}[\p{L}'’-]*)*$/u.test(value)) return value.split(" ")[0]!;
  }
  return undefined;
}

/** "Hi Dana," when the customer opened with a greeting, mirroring it; nothing otherwise. */
function opening(message: string): string[] {
  const greeting = GREETING.exec(messageBody(message).trim())?.[1];
  const name = customerName(message);
  if (!greeting || !name) return [];
  return [`${greeting.charAt(0).toUpperCase()}${greeting.slice(1).toLowerCase()} ${name},`];
}

function adaptTemplate(template: ReplyDemonstration, message: string, facts: Fact[], asked: Fact[]): string[] {
  const byLabel = new Map(facts.map((fact) => [normalizeText(fact.label), fact]));
  const mentioned = new Set<Fact>();
  const clauses: string[] = [];
  let lastFact = -1;
  for (const clause of template.answer.split(/(?<=[.!?,])\s+/)) {
    const fact = FACT_CLAUSE.exec(clause);
    if (fact) {
      const current = byLabel.get(normalizeText(fact[1]!));
      if (!current || mentioned.has(current)) continue;
      mentioned.add(current);
      clauses.push(`${fact[1]}: ${current.value}${fact[3] || "."}`);
      lastFact = clauses.length - 1;
      continue;
    }
    const refilled = refillCopies(clause, template.message, message);
    if (refilled !== undefined) clauses.push(refilled);
  }
  const missing = asked.filter((fact) => !mentioned.has(fact)).map(factClause);
  clauses.splice(lastFact + 1, 0, ...missing);
  return clauses;
}

/**
 * Words the template copied from its own message (a capitalised word inside the clause, or one with a
 * digit) are replaced by the words in the same place of this message: after the same two tokens. A
 * clause whose copy has no counterpart here is dropped, as a model would not repeat another customer's name.
 */
function refillCopies(clause: string, templateMessage: string, message: string): string | undefined {
  const source = tokens(templateMessage);
  const target = tokens(message);
  let failed = false;
  const refilled = clause.replace(/[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu, (word, offset: number) => {
    const copied = (offset > 0 && /^\p{Lu}/u.test(word)) || /\p{N}/u.test(word);
    const at = copied ? source.findIndex((token, index) => index >= 2 && token === word) : -1;
    if (at < 0) return word;
    const anchor = `${source[at - 2]} ${source[at - 1]}`.toLowerCase();
    const here = target.findIndex((_, index) => index >= 2 && `${target[index - 2]} ${target[index - 1]}`.toLowerCase() === anchor);
    if (here < 0) failed = true;
    return here < 0 ? word : target[here]!;
  });
  return failed ? undefined : refilled;
}

function tokens(text: string): string[] {
  return text.match(/[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*|[^\s\p{L}\p{N}]/gu) ?? [];
}

/** Whole clauses while they fit the limit (at least the first, cut to the limit). */
function withinWords(clauses: string[], limit: number): string[] {
  const kept: string[] = [];
  let count = 0;
  for (const clause of clauses) {
    const words = clause.split(/\s+/).filter(Boolean).length;
    if (count + words > limit) {
      if (kept.length === 0) kept.push(clause.split(/\s+/).slice(0, limit).join(" "));
      break;
    }
    kept.push(clause);
    count += words;
  }
  return kept;
}

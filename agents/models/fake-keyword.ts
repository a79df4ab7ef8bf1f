import { setTimeout as sleep } from "node:timers/promises";
import type { LanguageModelV2 } from "@ai-sdk/provider";
import { responseSchema, textModel } from "./text-model.ts";

const STOPWORDS = new Set(
  "the and for are but not you your with this that from have has had was were our out all any can its it's just about into than then them they their there what when which who will would could should been being over more most some such very also only own same other one two new get got how why off too yet per via".split(
    " ",
  ),
);

export function words(text: string): string[] {
  return (text.toLowerCase().match(/[a-z0-9]+/g) ?? []).filter((word) => word.length >= 3 && !STOPWORDS.has(word));
}

interface LabelledExample {
  words: Set<string>;
  answer: Record<string, unknown>;
}

/**
 * A deterministic FAKE model for tests and benchmarks: no language model at all. It answers a
 * classification request by reading the prompt the way an instruction-following model would: every
 * `- label: description` line of the system prompt lends its words to that label, and every
 * `Post: … / Answer: {…}` example votes for its labels when it shares words with the post. A better
 * prompt therefore really gives better answers, which is what lets tests and benchmarks see the loop
 * learn without a real model. Ties go to the label listed first; with no evidence at all it answers
 * the label listed last (the "anything else" slot).
 */
export function fakeKeywordModel(options: { latencyMs?: number } = {}): LanguageModelV2 {
  return textModel("fake", "fake-keyword", async (turns, callOptions) => {
    if (options.latencyMs) await sleep(options.latencyMs, undefined, { signal: callOptions.abortSignal });
    const system = turns.filter((turn) => turn.role === "system").map((turn) => turn.text).join("\n");
    const post = turns.findLast((turn) => turn.role === "user")?.text ?? "";
    const answer = classify(system, post, enumFields(responseSchema(callOptions)));
    const text = JSON.stringify(answer);
    return { text, inputTokens: words(system).length + words(post).length, outputTokens: words(text).length + 2 };
  });
}

function enumFields(schema: Record<string, unknown> | undefined): Record<string, string[]> {
  const properties = (schema?.properties ?? {}) as Record<string, { enum?: unknown[] }>;
  return Object.fromEntries(
    Object.entries(properties)
      .filter(([, property]) => Array.isArray(property.enum))
      .map(([field, property]) => [field, property.enum!.map(String)]),
  );
}

function classify(system: string, post: string, fields: Record<string, string[]>): Record<string, string> {
  const postWords = new Set(words(post));
  const examples = parseExamples(system);
  const answer: Record<string, string> = {};
  for (const [field, labels] of Object.entries(fields)) {
    const described = describedLabels(system, labels);
    const order = described.length > 0 ? described.map((entry) => entry.label) : labels;
    const scores = new Map(order.map((label) => [label, 0]));
    for (const { label, keywords } of described) {
      scores.set(label, (scores.get(label) ?? 0) + [...keywords].filter((word) => postWords.has(word)).length);
    }
    for (const example of examples) {
      const label = String(example.answer[field] ?? "");
      if (!scores.has(label)) continue;
      const shared = [...example.words].filter((word) => postWords.has(word)).length;
      if (shared >= 2) scores.set(label, scores.get(label)! + shared * 0.75);
    }
    const best = Math.max(...scores.values());
    answer[field] = best > 0 ? order.find((label) => scores.get(label) === best)! : order.at(-1)!;
  }
  return answer;
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

function parseExamples(system: string): LabelledExample[] {
  const examples: LabelledExample[] = [];
  const pattern = /^Post:\s*(.*)\n\s*Answer:\s*(\{.*\})\s*$/gm;
  for (const match of system.matchAll(pattern)) {
    try {
      examples.push({ words: new Set(words(match[1]!)), answer: JSON.parse(match[2]!) as Record<string, unknown> });
    } catch {
      // An example whose answer is not JSON teaches nothing; a real model would ignore it too.
    }
  }
  return examples;
}

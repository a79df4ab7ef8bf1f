import type { LanguageModelV2 } from "@ai-sdk/provider";
import { words } from "../agents/models/fake-keyword.ts";
import { textModel } from "../agents/models/text-model.ts";
import { JUDGE_PROMPT, RUBRIC_LINE } from "./judge.ts";

/**
 * A deterministic FAKE judge model for tests and offline runs with the fake agent model: no language
 * model at all. It reads the judge prompt the way a grader would skim it: an answered label is
 * "supported" when the input shares a word (or a five-letter stem) with the label's name or rubric
 * line. Every field supported rates 5, some 3, none 1; the reason names the unsupported fields.
 */
export function fakeJudgeModel(): LanguageModelV2 {
  return textModel("fake", "fake-judge", async (turns) => {
    const prompt = turns.filter((turn) => turn.role === "user").map((turn) => turn.text).join("\n");
    const verdict = judge(prompt);
    const text = JSON.stringify(verdict);
    return { text, inputTokens: words(prompt).length, outputTokens: words(text).length };
  });
}

function judge(prompt: string): { rating: number; reason: string } {
  const rubric = parseRubric(section(prompt, JUDGE_PROMPT.fields));
  const inputStems = new Set(words(section(prompt, JUDGE_PROMPT.input).join(" ")).map(stem));
  let answer: Record<string, unknown>;
  try {
    answer = JSON.parse(section(prompt, JUDGE_PROMPT.answer).join("")) as Record<string, unknown>;
  } catch {
    return { rating: 1, reason: "the answer is not JSON" };
  }
  const unsupported = [...rubric].filter(([field, labels]) => {
    const label = String(answer[field] ?? "");
    const evidence = words(`${label.replace(/_/g, " ")} ${labels.get(label) ?? ""}`).map(stem);
    return !evidence.some((word) => inputStems.has(word));
  });
  const supported = rubric.size - unsupported.length;
  if (unsupported.length === 0) return { rating: 5, reason: "every field fits the input" };
  const why = unsupported.map(([field]) => `${field} "${String(answer[field] ?? "")}" does not fit the input`).join("; ");
  return { rating: supported > 0 ? 3 : 1, reason: why };
}

/** The lines after a heading, up to the next blank line. */
function section(prompt: string, heading: string): string[] {
  const lines = prompt.split("\n");
  const start = lines.indexOf(heading);
  if (start < 0) return [];
  const end = lines.findIndex((line, index) => index > start && line.trim() === "");
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** `field:` lines, each followed by `- label: description` lines. */
function parseRubric(lines: string[]): Map<string, Map<string, string>> {
  const fields = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const line of lines) {
    const label = RUBRIC_LINE.exec(line);
    if (label && current) current.set(label[1]!, label[2]!);
    else if (/^\S+:$/.test(line)) fields.set(line.slice(0, -1), (current = new Map()));
  }
  return fields;
}

function stem(word: string): string {
  return word.slice(0, 5);
}

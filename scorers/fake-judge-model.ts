import type { LanguageModelV2 } from "@ai-sdk/provider";
import { words } from "../agents/models/fake-keyword.ts";
import { textModel } from "../agents/models/text-model.ts";
import { JUDGE_PROMPT, RUBRIC_LINE } from "./judge.ts";

/**
 * A deterministic FAKE judge model for tests and offline runs with the fake agent model: no language
 * model at all. It skims the judge prompt the way a hurried grader would:
 * - a label rubric (`field:` lines with `- label: description` under each): an answered label is
 *   "supported" when the input shares a word (or a five-letter stem) with the label's name or line;
 *   every field supported rates 5, some 3, none 1;
 * - any other rubric: each `- criterion` line is met when the answer shares a five-letter stem with it;
 *   the rating is 1 + 4 × the share of criteria met, rounded.
 * The reason names what was not supported or not met.
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
  const lines = prompt.split("\n");
  const at = (heading: string) => lines.indexOf(heading);
  const rubric = lines.slice(at(JUDGE_PROMPT.rubric) + 1, at(JUDGE_PROMPT.input));
  const input = lines.slice(at(JUDGE_PROMPT.input) + 1, at(JUDGE_PROMPT.answer)).join(" ");
  const answerEnd = lines.findLastIndex((line) => line.startsWith("Rate the answer"));
  const answer = lines.slice(at(JUDGE_PROMPT.answer) + 1, answerEnd).join("\n").trim();
  const labelRubric = parseLabelRubric(rubric);
  return labelRubric.size > 0 ? judgeLabels(labelRubric, input, answer) : judgeCriteria(rubric, answer);
}

function judgeLabels(rubric: Map<string, Map<string, string>>, input: string, answerText: string): { rating: number; reason: string } {
  const inputStems = new Set(words(input).map(stem));
  let answer: Record<string, unknown>;
  try {
    answer = JSON.parse(answerText) as Record<string, unknown>;
  } catch {
    return { rating: 1, reason: "the answer is not JSON" };
  }
  const unsupported = [...rubric].filter(([field, labels]) => {
    const label = String(answer[field] ?? "");
    const evidence = words(`${label.replace(/_/g, " ")} ${labels.get(label) ?? ""}`).map(stem);
    return !evidence.some((word) => inputStems.has(word));
  });
  if (unsupported.length === 0) return { rating: 5, reason: "every field fits the input" };
  const why = unsupported.map(([field]) => `${field} "${String(answer[field] ?? "")}" does not fit the input`).join("; ");
  return { rating: unsupported.length < rubric.size ? 3 : 1, reason: why };
}

function judgeCriteria(rubric: string[], answer: string): { rating: number; reason: string } {
  const criteria = rubric.map((line) => /^\s*-\s*(.+)$/.exec(line)?.[1]?.trim()).filter((line): line is string => Boolean(line));
  if (criteria.length === 0) return { rating: 3, reason: "the rubric lists no criteria" };
  const answerStems = new Set(words(answer).map(stem));
  const missed = criteria.filter((criterion) => !words(criterion).some((word) => answerStems.has(stem(word))));
  const rating = Math.round(1 + (4 * (criteria.length - missed.length)) / criteria.length);
  return { rating, reason: missed.length === 0 ? "meets every point of the rubric" : `misses: ${missed.join("; ")}` };
}

/** `field:` lines, each followed by `- label: description` lines. */
function parseLabelRubric(lines: string[]): Map<string, Map<string, string>> {
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

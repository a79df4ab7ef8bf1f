import type { PromptContent } from "../store/schema.ts";
import { placeholdersOf, ROOT_COMPONENT } from "./prompt-template.ts";

export interface DiffLine {
  op: " " | "-" | "+";
  text: string;
}

export interface ComponentDiff {
  component: string;
  change: "added" | "removed" | "modified" | "unchanged";
  /** A unified diff of the component's lines (`@@ -a,b +c,d @@` hunks, 3 lines of context); "" when unchanged. */
  unified: string;
}

const CONTEXT_LINES = 3;

/**
 * Per component, in reading order: `instructions`, then the components in the order its placeholders
 * name them, then any others by name (stored JSON keeps no order of its own).
 */
export function diffPromptContent(from: PromptContent, to: PromptContent): ComponentDiff[] {
  const all = [...new Set([...Object.keys(from.components), ...Object.keys(to.components)])];
  const root = to.components[ROOT_COMPONENT] ?? from.components[ROOT_COMPONENT] ?? "";
  const ordered = [ROOT_COMPONENT, ...placeholdersOf(root)].filter((name) => all.includes(name));
  const names = [...new Set([...ordered, ...all.sort()])];
  return names.map((component) => {
    const before = from.components[component];
    const after = to.components[component];
    const change = before === undefined ? "added" : after === undefined ? "removed" : before === after ? "unchanged" : "modified";
    return { component, change, unified: change === "unchanged" ? "" : unifiedDiff(before ?? "", after ?? "") };
  });
}

/** Beyond this many LCS cells (lines before × lines after) the middle is shown as replaced wholesale: memory stays bounded. */
const MAX_LCS_CELLS = 4_000_000;

/** Longest-common-subsequence line diff: removed lines before added ones inside each change. */
export function diffLines(before: string[], after: string[]): DiffLine[] {
  let prefix = 0;
  while (prefix < before.length && prefix < after.length && before[prefix] === after[prefix]) prefix++;
  let suffix = 0;
  while (suffix < before.length - prefix && suffix < after.length - prefix && before[before.length - 1 - suffix] === after[after.length - 1 - suffix]) suffix++;
  const same = (text: string): DiffLine => ({ op: " ", text });
  return [
    ...before.slice(0, prefix).map(same),
    ...diffMiddle(before.slice(prefix, before.length - suffix), after.slice(prefix, after.length - suffix)),
    ...before.slice(before.length - suffix).map(same),
  ];
}

function diffMiddle(before: string[], after: string[]): DiffLine[] {
  const rows = before.length;
  const columns = after.length;
  if (rows * columns > MAX_LCS_CELLS) {
    return [...before.map((text): DiffLine => ({ op: "-", text })), ...after.map((text): DiffLine => ({ op: "+", text }))];
  }
  // common[i][j]: length of the LCS of before[i..] and after[j..].
  const common = Array.from({ length: rows + 1 }, () => new Uint32Array(columns + 1));
  for (let i = rows - 1; i >= 0; i--) {
    for (let j = columns - 1; j >= 0; j--) {
      common[i]![j] = before[i] === after[j] ? common[i + 1]![j + 1]! + 1 : Math.max(common[i + 1]![j]!, common[i]![j + 1]!);
    }
  }
  const lines: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < rows || j < columns) {
    if (i < rows && j < columns && before[i] === after[j]) {
      lines.push({ op: " ", text: before[i]! });
      i++;
      j++;
    } else if (j >= columns || (i < rows && common[i + 1]![j]! >= common[i]![j + 1]!)) {
      lines.push({ op: "-", text: before[i++]! });
    } else {
      lines.push({ op: "+", text: after[j++]! });
    }
  }
  return lines;
}

function unifiedDiff(before: string, after: string): string {
  const lines = diffLines(linesOf(before), linesOf(after));
  const changed = lines.flatMap((line, index) => (line.op === " " ? [] : [index]));
  const hunks: [number, number][] = [];
  for (const index of changed) {
    const start = Math.max(0, index - CONTEXT_LINES);
    const end = Math.min(lines.length, index + CONTEXT_LINES + 1);
    const last = hunks.at(-1);
    if (last && start <= last[1]) last[1] = end;
    else hunks.push([start, end]);
  }
  const output: string[] = [];
  for (const [start, end] of hunks) {
    const oldStart = lines.slice(0, start).filter((line) => line.op !== "+").length;
    const newStart = lines.slice(0, start).filter((line) => line.op !== "-").length;
    const body = lines.slice(start, end);
    const oldCount = body.filter((line) => line.op !== "+").length;
    const newCount = body.filter((line) => line.op !== "-").length;
    output.push(`@@ -${rangeOf(oldStart, oldCount)} +${rangeOf(newStart, newCount)} @@`);
    for (const line of body) output.push(`${line.op}${line.text}`);
  }
  return output.join("\n");
}

/** An empty component has no lines (not one empty line), so adding text to it shows only `+` lines. */
function linesOf(text: string): string[] {
  return text === "" ? [] : text.split("\n");
}

/** Unified-diff ranges are 1-based; an empty range names the line before it. */
function rangeOf(start: number, count: number): string {
  return `${count === 0 ? start : start + 1},${count}`;
}

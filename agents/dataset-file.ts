import { readFile, stat } from "node:fs/promises";
import { z } from "zod";
import { InvalidInputError } from "../store/errors.ts";
import type { Task } from "../store/datasets.ts";
import type { AgentDefinition } from "./types.ts";

export const MAX_DATASET_BYTES = 100 * 1024 * 1024;

const lineShape = z
  .object({
    id: z.string().trim().min(1, "must be a non-empty string").max(200, "must be at most 200 characters"),
    input: z.record(z.string(), z.unknown()),
    expected: z.record(z.string(), z.unknown()).nullable().optional(),
    split: z.enum(["train", "validation", "test"]).optional(),
  })
  .strict();

/**
 * Reads a JSONL data set, one task per line: {"id", "input", "expected"?, "split"?}. Every line is
 * checked against the agent's input schema and (partial) output schema before anything is returned,
 * so one bad line rejects the whole file with its line number and the reason.
 */
export async function readDatasetFile(path: string, agent: AgentDefinition, defaultSplit: Task["split"] = "train"): Promise<Task[]> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    throw new InvalidInputError(`${path}: cannot read the file (does it exist?).`);
  }
  if (size > MAX_DATASET_BYTES) throw new InvalidInputError(`${path}: ${size} bytes is over the ${MAX_DATASET_BYTES / 1024 / 1024} MiB limit for one data set file.`);
  return parseDataset(await readFile(path, "utf8"), agent, path, defaultSplit);
}

export function parseDataset(text: string, agent: AgentDefinition, source: string, defaultSplit: Task["split"] = "train"): Task[] {
  const expectedSchema = agent.expectedSchema;
  const tasks: Task[] = [];
  const firstLineOf = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  lines.forEach((line, index) => {
    const lineNumber = index + 1;
    if (line.trim() === "") return;
    const fail = (reason: string) => new InvalidInputError(`${source}:${lineNumber}: ${reason}. Nothing was imported.`);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw fail(`not valid JSON (${(error as Error).message})`);
    }
    const shape = lineShape.safeParse(value);
    if (!shape.success) throw fail(describe(shape.error));
    const input = agent.inputSchema.safeParse(shape.data.input);
    if (!input.success) throw fail(`input does not match agent "${agent.id}": ${describe(input.error, "input")}`);
    let expected: Record<string, unknown> | null = null;
    if (shape.data.expected) {
      const parsed = expectedSchema.safeParse(shape.data.expected);
      if (!parsed.success) throw fail(`expected does not match agent "${agent.id}"'s output: ${describe(parsed.error, "expected")}`);
      expected = Object.keys(parsed.data).length > 0 ? (parsed.data as Record<string, unknown>) : null;
    }
    const previous = firstLineOf.get(shape.data.id);
    if (previous !== undefined) throw fail(`duplicate id "${shape.data.id}" (first used on line ${previous})`);
    firstLineOf.set(shape.data.id, lineNumber);
    tasks.push({ id: shape.data.id, input: input.data, expected, split: shape.data.split ?? defaultSplit });
  });
  if (tasks.length === 0) throw new InvalidInputError(`${source}: the file has no tasks. Nothing was imported.`);
  return tasks;
}

function describe(error: z.ZodError, prefix = ""): string {
  return error.issues
    .map((issue) => {
      const path = [prefix, ...issue.path.map(String)].filter(Boolean).join(".");
      if (issue.code === "unrecognized_keys") return `${path ? `${path}: ` : ""}unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
      return `${path || "line"}: ${issue.message}`;
    })
    .join("; ");
}

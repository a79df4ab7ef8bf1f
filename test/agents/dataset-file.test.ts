import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { MAX_DATASET_BYTES, parseDataset, readDatasetFile } from "../../agents/dataset-file.ts";
import { CATEGORIES, postAnalyzer, SENTIMENTS } from "../../agents/post-analyzer/index.ts";
import { InvalidInputError } from "../../store/errors.ts";
import { thrownBy } from "../support/thrown.ts";

const SOURCE = "posts.jsonl";

let scratch: string;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "agl-dataset-"));
});

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

function jsonl(...lines: unknown[]): string {
  return lines.map((line) => (typeof line === "string" ? line : JSON.stringify(line))).join("\n");
}

const validLine = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  input: { content: `post ${id} about shipping code` },
  expected: { category: "technology", sentiment: "positive" },
  ...extra,
});

/** Parses expecting rejection; returns the message after checking it is an InvalidInputError. */
const rejectionOf = (text: string): string => thrownBy(() => parseDataset(text, postAnalyzer, SOURCE), InvalidInputError).message;

describe("parseDataset accepts", () => {
  test("a file with blank lines, CRLF endings, partial expected, per-line and default splits", () => {
    const text = [
      JSON.stringify({ id: "a", input: { content: "New GPU drivers are out", author: "@dev" }, expected: { category: "technology", sentiment: "neutral" }, split: "validation" }),
      "",
      "   ",
      JSON.stringify({ id: "b", input: { content: "We raised our seed round" }, expected: { category: "startups" } }),
      JSON.stringify({ id: "c", input: { content: "Lovely walk today" }, split: "test" }),
      JSON.stringify({ id: "d", input: { content: "Roadmap review" }, expected: null }),
      JSON.stringify({ id: "e", input: { content: "Nothing expected here" }, expected: {} }),
      "",
    ].join("\r\n");

    const tasks = parseDataset(text, postAnalyzer, SOURCE, "train");

    expect(tasks).toEqual([
      { id: "a", input: { content: "New GPU drivers are out", author: "@dev" }, expected: { category: "technology", sentiment: "neutral" }, split: "validation" },
      { id: "b", input: { content: "We raised our seed round" }, expected: { category: "startups" }, split: "train" },
      { id: "c", input: { content: "Lovely walk today" }, expected: null, split: "test" },
      { id: "d", input: { content: "Roadmap review" }, expected: null, split: "train" },
      { id: "e", input: { content: "Nothing expected here" }, expected: null, split: "train" },
    ]);
  });

  test("the default split applies only to lines without their own", () => {
    const tasks = parseDataset(jsonl(validLine("x"), validLine("y", { split: "train" })), postAnalyzer, SOURCE, "validation");
    expect(tasks.map((task) => task.split)).toEqual(["validation", "train"]);
  });
});

describe("parseDataset rejects a bad line with file:LINE: and the reason", () => {
  test("invalid JSON", () => {
    const message = rejectionOf(jsonl(validLine("a"), '{"id": "b", "input": '));
    expect(message).toMatch(/^posts\.jsonl:2: not valid JSON/);
  });

  test("an unknown field on the line", () => {
    const message = rejectionOf(jsonl(validLine("a", { label: "x" })));
    expect(message).toMatch(/^posts\.jsonl:1: /);
    expect(message).toContain('unknown field "label"');
  });

  test("a missing id", () => {
    const message = rejectionOf(jsonl(validLine("a"), { input: { content: "no id" } }));
    expect(message).toMatch(/^posts\.jsonl:2: id: /);
    expect(message).toContain("expected string, received undefined");
  });

  test("a missing input, or a line that is not an object", () => {
    expect(rejectionOf(jsonl({ id: "a" }))).toMatch(/^posts\.jsonl:1: input: .*expected record, received undefined/);
    expect(rejectionOf(jsonl(validLine("a"), "[1, 2]"))).toMatch(/^posts\.jsonl:2: line: .*expected object, received array/);
  });

  test("a blank id", () => {
    const message = rejectionOf(jsonl({ id: "  ", input: { content: "blank id" } }));
    expect(message).toMatch(/^posts\.jsonl:1: id: must be a non-empty string/);
  });

  test("empty input.content", () => {
    const message = rejectionOf(jsonl(validLine("a"), validLine("b"), { id: "c", input: { content: "   " } }));
    expect(message).toMatch(/^posts\.jsonl:3: input does not match agent "post-analyzer"/);
    expect(message).toContain("input.content: must not be empty");
  });

  test("an input with an unknown field", () => {
    const message = rejectionOf(jsonl({ id: "a", input: { content: "hi", title: "x" } }));
    expect(message).toMatch(/^posts\.jsonl:1: input does not match/);
    expect(message).toContain('input: unknown field "title"');
  });

  test("an expected label outside the agent's enum", () => {
    const message = rejectionOf(jsonl({ id: "a", input: { content: "hi" }, expected: { category: "sports" } }));
    expect(message).toMatch(/^posts\.jsonl:1: expected does not match agent "post-analyzer"'s output/);
    expect(message).toContain("expected.category");
    expect(message).toContain('"technology"');
  });

  test("an expected field the agent does not output", () => {
    const message = rejectionOf(jsonl({ id: "a", input: { content: "hi" }, expected: { category: "general", tone: "dry" } }));
    expect(message).toMatch(/^posts\.jsonl:1: expected does not match/);
    expect(message).toContain('expected: unknown field "tone"');
  });

  test("a split that is not train, validation or test", () => {
    const message = rejectionOf(jsonl(validLine("a", { split: "holdout" })));
    expect(message).toMatch(/^posts\.jsonl:1: split: /);
    expect(message).toContain('"validation"');
  });

  test("a duplicate id, naming the line that used it first", () => {
    const message = rejectionOf(jsonl(validLine("a"), "", validLine("b"), validLine("a")));
    expect(message).toMatch(/^posts\.jsonl:4: duplicate id "a" \(first used on line 1\)/);
  });

  test("a file with no tasks at all", () => {
    expect(rejectionOf("")).toBe("posts.jsonl: the file has no tasks. Nothing was imported.");
    expect(rejectionOf("\n\r\n  \n")).toContain("has no tasks");
  });

  test("every rejection says that nothing was imported", () => {
    expect(rejectionOf(jsonl(validLine("a"), "not json"))).toContain("Nothing was imported.");
  });
});

describe("readDatasetFile", () => {
  test("reads and parses a file from disk, naming the path in errors", async () => {
    const path = join(scratch, "ok.jsonl");
    await writeFile(path, jsonl(validLine("a"), validLine("b", { split: "validation" })));
    const tasks = await readDatasetFile(path, postAnalyzer);
    expect(tasks.map((task) => [task.id, task.split])).toEqual([
      ["a", "train"],
      ["b", "validation"],
    ]);

    const bad = join(scratch, "bad.jsonl");
    await writeFile(bad, jsonl(validLine("a"), "{"));
    await expect(readDatasetFile(bad, postAnalyzer)).rejects.toThrow(`${bad}:2: not valid JSON`);
  });

  test("a file over the size limit is refused before it is read", async () => {
    expect(MAX_DATASET_BYTES).toBe(100 * 1024 * 1024);
    // A sparse file: the size is real to stat() but takes no disk blocks.
    const path = join(scratch, "huge.jsonl");
    writeFileSync(path, "");
    await truncate(path, MAX_DATASET_BYTES + 1);
    const rejection = readDatasetFile(path, postAnalyzer);
    await expect(rejection).rejects.toBeInstanceOf(InvalidInputError);
    await expect(rejection).rejects.toThrow(`${path}: ${MAX_DATASET_BYTES + 1} bytes is over the 100 MiB limit`);
  });

  test("a file exactly at the size limit is not refused for its size", async () => {
    const path = join(scratch, "at-limit.jsonl");
    writeFileSync(path, "");
    await truncate(path, MAX_DATASET_BYTES);
    // The content is NUL bytes, so parsing fails: what matters is that the size check let it through.
    await expect(readDatasetFile(path, postAnalyzer)).rejects.toThrow(`${path}:1: not valid JSON`);
  });

  test("a missing file", async () => {
    const path = join(scratch, "missing.jsonl");
    const rejection = readDatasetFile(path, postAnalyzer);
    await expect(rejection).rejects.toBeInstanceOf(InvalidInputError);
    await expect(rejection).rejects.toThrow(`${path}: cannot read the file (does it exist?)`);
  });
});

test("the bundled post data set parses: 300 tasks, 180 train / 60 validation / 60 test, 25 per category x sentiment, 5 of them in test", async () => {
  const tasks = await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer);
  expect(tasks).toHaveLength(300);
  expect(tasks.filter((task) => task.split === "train")).toHaveLength(180);
  expect(tasks.filter((task) => task.split === "validation")).toHaveLength(60);
  expect(tasks.filter((task) => task.split === "test")).toHaveLength(60);

  const cells = new Map<string, number>();
  const testCells = new Map<string, number>();
  for (const task of tasks) {
    const key = `${String(task.expected?.category)}/${String(task.expected?.sentiment)}`;
    cells.set(key, (cells.get(key) ?? 0) + 1);
    if (task.split === "test") testCells.set(key, (testCells.get(key) ?? 0) + 1);
  }
  const every = (count: number) => new Map(CATEGORIES.flatMap((category) => SENTIMENTS.map((sentiment) => [`${category}/${sentiment}`, count] as const)));
  expect(cells).toEqual(every(25));
  expect(testCells).toEqual(every(5));
  // The test split is new text: no test post repeats a train or validation post.
  const seen = new Set(tasks.filter((task) => task.split !== "test").map((task) => String(task.input.content)));
  expect(tasks.filter((task) => task.split === "test" && seen.has(String(task.input.content)))).toEqual([]);
});

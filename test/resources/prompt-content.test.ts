import { describe, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { diffLines, diffPromptContent } from "../../agents/prompt-diff.ts";
import { PROMPT_LIMITS, validatePromptContent } from "../../agents/prompt-validation.ts";
import { createAgentRegistry } from "../../agents/registry.ts";
import { InvalidInputError, NotFoundError } from "../../store/errors.ts";
import type { PromptContent } from "../../store/schema.ts";
import { thrownBy } from "../support/thrown.ts";

const seed = postAnalyzer.prompt.seed;
const withComponents = (components: Record<string, string>): PromptContent => ({ engine: "placeholders", components: { ...seed.components, ...components } });

const rejection = (content: unknown): string => thrownBy(() => validatePromptContent(postAnalyzer, content), InvalidInputError).message;

describe("prompt content validation (every publish path)", () => {
  test("the agent's seed is valid, and the examples component may be empty", () => {
    expect(validatePromptContent(postAnalyzer, seed)).toEqual(seed);
    expect(seed.components.examples).toBe("");
  });

  test("a missing or empty component the agent reads is rejected by name", () => {
    const { categories: _dropped, ...rest } = seed.components;
    expect(rejection({ engine: "placeholders", components: rest })).toBe(
      'Invalid prompt for resource "post-analyzer": component "categories" is missing; "instructions" uses {{categories}} but no such component exists. Nothing was published.',
    );
    expect(rejection(withComponents({ sentiments: "  \n" }))).toContain('component "sentiments" is empty');
    expect(rejection(withComponents({ instructions: "" }))).toContain('component "instructions" is empty');
  });

  test("instructions that drop a placeholder the agent needs, or use one naming no component, are rejected", () => {
    const dropped = seed.components.instructions!.replace("{{sentiments}}", "");
    expect(rejection(withComponents({ instructions: dropped }))).toContain('"instructions" lost placeholder {{sentiments}} the agent needs');
    expect(rejection(withComponents({ instructions: `${seed.components.instructions}\n{{tone}}` }))).toContain('"instructions" uses {{tone}} but no such component exists');
  });

  test("size limits apply per component and to the whole", () => {
    const big = "x".repeat(PROMPT_LIMITS.componentChars + 1);
    expect(rejection(withComponents({ examples: big }))).toContain(`component "examples" has ${big.length} characters (at most ${PROMPT_LIMITS.componentChars})`);
    const parts = Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`extra${i}`, "y".repeat(PROMPT_LIMITS.componentChars)]));
    expect(rejection(withComponents(parts))).toMatch(/the components have \d+ characters in all \(at most 48000\)/);
  });

  test("an unknown engine, a wrong shape or an odd component name is rejected with where", () => {
    expect(rejection({ ...seed, engine: "jinja" })).toContain('unknown engine "jinja" (known: placeholders)');
    expect(rejection({ engine: "placeholders", components: { ...seed.components, categories: 7 } })).toContain("content.components.categories:");
    expect(rejection({ ...seed, extra: true })).toContain("content:");
    expect(rejection("just text")).toContain("content:");
    expect(rejection(withComponents({ "bad name": "text" }))).toContain('component name "bad name" must be letters, digits and _');
  });

  test("resources belong to agents by agent.prompt.resource", () => {
    const agents = createAgentRegistry([postAnalyzer]);
    expect(agents.forResource("post-analyzer")).toBe(postAnalyzer);
    expect(() => agents.forResource("nope")).toThrow(new NotFoundError('No agent uses a prompt resource named "nope". Known resources: post-analyzer.'));
  });
});

describe("prompt diff", () => {
  test("an LCS line diff keeps common lines and shows removals before additions", () => {
    expect(diffLines(["a", "b", "c", "d"], ["a", "c", "x", "d"])).toEqual([
      { op: " ", text: "a" },
      { op: "-", text: "b" },
      { op: " ", text: "c" },
      { op: "+", text: "x" },
      { op: " ", text: "d" },
    ]);
  });

  test("each component gets a unified diff with 3 lines of context, in reading order; unchanged ones say so", () => {
    const before = withComponents({ categories: ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"].join("\n") });
    const after = withComponents({ categories: ["1", "2", "3", "4", "five", "6", "7", "8", "9", "10", "11"].join("\n"), examples: "Post: hi\nAnswer: {}" });
    const diff = diffPromptContent(before, after);
    expect(diff.map((d) => [d.component, d.change])).toEqual([
      ["instructions", "unchanged"],
      ["categories", "modified"],
      ["sentiments", "unchanged"],
      ["examples", "modified"],
    ]);
    expect(diff[1]!.unified).toBe(["@@ -2,9 +2,10 @@", " 2", " 3", " 4", "-5", "+five", " 6", " 7", " 8", " 9", " 10", "+11"].join("\n"));
    expect(diff[3]!.unified).toBe(["@@ -0,0 +1,2 @@", "+Post: hi", "+Answer: {}"].join("\n"));
    expect(diff[0]!.unified).toBe("");
  });

  test("far-apart changes get separate hunks; added and removed components are whole", () => {
    const lines = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`);
    const changed = lines.map((line, i) => (i === 1 || i === 17 ? `${line}!` : line));
    const [diff] = diffPromptContent({ engine: "placeholders", components: { a: lines.join("\n") } }, { engine: "placeholders", components: { a: changed.join("\n") } });
    expect(diff!.unified.split("\n").filter((line) => line.startsWith("@@"))).toEqual(["@@ -1,5 +1,5 @@", "@@ -15,6 +15,6 @@"]);
    const components = diffPromptContent({ engine: "placeholders", components: { old: "gone" } }, { engine: "placeholders", components: { fresh: "new\ntext" } });
    expect(components).toEqual([
      { component: "fresh", change: "added", unified: "@@ -0,0 +1,2 @@\n+new\n+text" },
      { component: "old", change: "removed", unified: "@@ -1,1 +0,0 @@\n-gone" },
    ]);
  });
});

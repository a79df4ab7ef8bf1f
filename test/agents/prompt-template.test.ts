import { describe, expect, test } from "vitest";
import { placeholdersOf, renderPrompt } from "../../agents/prompt-template.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";

function prompt(components: Record<string, string>) {
  return { engine: "placeholders" as const, components };
}

describe("renderPrompt", () => {
  test("replaces each {{name}} by the component of that name, spaces inside the braces allowed", () => {
    const text = renderPrompt(prompt({ instructions: "Labels:\n{{labels}}\nTone: {{ tone }}.", labels: "- a\n- b", tone: "dry" }));
    expect(text).toBe("Labels:\n- a\n- b\nTone: dry.");
  });

  test("inserts component text verbatim: a component containing {{x}} is not expanded again", () => {
    const text = renderPrompt(prompt({ instructions: "Example: {{examples}}", examples: "Post: I love {{secret}} braces", secret: "LEAKED" }));
    expect(text).toBe("Example: Post: I love {{secret}} braces");
  });

  test("a placeholder without a component renders as nothing", () => {
    expect(renderPrompt(prompt({ instructions: "before {{missing}}after" }))).toBe("before after");
  });

  test("collapses three or more line breaks into one blank line and trims the ends", () => {
    const text = renderPrompt(prompt({ instructions: "\n\n  Intro\n\n{{examples}}\n\n\n\nOutro\n\n\n\n\nEnd  \n\n", examples: "" }));
    expect(text).toBe("Intro\n\nOutro\n\nEnd");
  });

  test("keeps a single blank line as it is", () => {
    expect(renderPrompt(prompt({ instructions: "a\n\nb" }))).toBe("a\n\nb");
  });

  test("a prompt without an instructions component is refused", () => {
    expect(() => renderPrompt(prompt({ examples: "x" }))).toThrow('Prompt content has no "instructions" component.');
  });

  test("the post analyzer's seed prompt renders with every section filled and no placeholder left", () => {
    const text = renderPrompt(postAnalyzer.prompt.seed);
    expect(placeholdersOf(text)).toEqual([]);
    expect(text).toContain("- product_management: roadmaps");
    expect(text).toContain("- neutral: factual");
    expect(text).not.toMatch(/\n{3,}/);
  });
});

describe("placeholdersOf", () => {
  test("lists distinct placeholder names in order of first use", () => {
    expect(placeholdersOf("{{b}} {{a}} {{ b }} {{c_2}}")).toEqual(["b", "a", "c_2"]);
  });

  test("ignores text that is not a placeholder", () => {
    expect(placeholdersOf("{single} {{1abc}} {{with-dash}} {{ }} plain")).toEqual([]);
  });

  test("the seed prompt's instructions use every placeholder the agent requires", () => {
    expect(placeholdersOf(postAnalyzer.prompt.seed.components.instructions!).sort()).toEqual([...postAnalyzer.prompt.requiredPlaceholders].sort());
  });
});

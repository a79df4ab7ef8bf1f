import { existsSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { createLanguageModel, LOCAL_MODEL_NAME, localModelPath } from "../../agents/models/index.ts";
import { fixedLayoutGrammar } from "../../agents/models/local-llama.ts";
import { CATEGORIES, postAnalyzer, SENTIMENTS } from "../../agents/post-analyzer/index.ts";
import { createAgentRunner } from "../../agents/runner.ts";
import { loadConfig } from "../../config/load.ts";
import { INSTALL_ROOT } from "../../config/paths.ts";

// The project's own defaults: the model lives where `npm run setup` puts it under the install's data folder.
const config = loadConfig({ env: {}, cwd: INSTALL_ROOT });

/** A missing model is a broken setup, not a reason to skip: the test fails and says how to fix it. */
function requireModelFile(): void {
  const path = localModelPath(config);
  if (!existsSync(path)) throw new Error(`The local model file ${path} is missing: run \`npm run setup\` in ${INSTALL_ROOT} to install it.`);
}

describe("the real local model (SmolLM2 on the CPU)", () => {
  test("answers three posts through the Mastra runner with schema-valid outputs and token counts", async () => {
    requireModelFile();
    expect(config.model.provider).toBe("local");
    const run = createAgentRunner(postAnalyzer, createLanguageModel(config));
    const posts = [
      "Just upgraded my laptop and the new compiler builds twice as fast. Love it!",
      "We closed our seed round today after six months of pitching investors.",
      "Rainy Sunday, made soup and read a book with the kids.",
    ];
    for (const content of posts) {
      const result = await run({ content }, postAnalyzer.prompt.seed);
      expect(result.error).toBeNull();
      expect(result.status).toBe("succeeded");
      expect(CATEGORIES).toContain(result.output?.category);
      expect(SENTIMENTS).toContain(result.output?.sentiment);
      expect(Object.keys(result.output!).sort()).toEqual(["category", "sentiment"]);
      expect(result.model).toBe(`local/${LOCAL_MODEL_NAME}`);
      expect(result.inputTokens).toBeGreaterThan(0);
      expect(result.outputTokens).toBeGreaterThan(0);
    }
  });
});

describe("fixedLayoutGrammar", () => {
  const twoEnums = {
    type: "object",
    properties: {
      category: { type: "string", enum: ["technology", "general"] },
      sentiment: { type: "string", enum: ["positive", "negative"] },
    },
    required: ["category", "sentiment"],
    additionalProperties: false,
  };

  test("fixes the layout of an object of required string enums, leaving only the choices", () => {
    expect(fixedLayoutGrammar(twoEnums)).toBe(
      [
        'root ::= "{\\"category\\":" v0 ",\\"sentiment\\":" v1 "}"',
        'v0 ::= "\\"technology\\"" | "\\"general\\""',
        'v1 ::= "\\"positive\\"" | "\\"negative\\""',
      ].join("\n"),
    );
  });

  test("escapes quotes and backslashes inside labels", () => {
    const grammar = fixedLayoutGrammar({ type: "object", properties: { a: { enum: ['say "hi"', "back\\slash"] } }, required: ["a"] });
    expect(grammar).toBe(['root ::= "{\\"a\\":" v0 "}"', 'v0 ::= "\\"say \\\\\\"hi\\\\\\"\\"" | "\\"back\\\\\\\\slash\\""'].join("\n"));
  });

  test("gives up (undefined) on anything but required string enums", () => {
    const { category, sentiment } = twoEnums.properties;
    expect(fixedLayoutGrammar({ ...twoEnums, required: ["category"] })).toBeUndefined();
    expect(fixedLayoutGrammar({ ...twoEnums, properties: { category, note: { type: "string" } }, required: ["category", "note"] })).toBeUndefined();
    expect(fixedLayoutGrammar({ ...twoEnums, properties: { category, score: { enum: [1, 2] } }, required: ["category", "score"] })).toBeUndefined();
    expect(fixedLayoutGrammar({ ...twoEnums, properties: { category, sentiment: { enum: [] } } })).toBeUndefined();
    expect(fixedLayoutGrammar({ type: "object", properties: {}, required: [] })).toBeUndefined();
    expect(fixedLayoutGrammar({ type: "array", items: sentiment })).toBeUndefined();
  });
});

import { describe, expect, test } from "vitest";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { textModel } from "../../agents/models/text-model.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { createAgentRunner } from "../../agents/runner.ts";
import type { PromptContent } from "../../store/schema.ts";

const seed = postAnalyzer.prompt.seed;

function withComponents(components: Record<string, string>): PromptContent {
  return { ...seed, components: { ...seed.components, ...components } };
}

const runFake = createAgentRunner(postAnalyzer, fakeKeywordModel());

describe("fake keyword model through the Mastra runner", () => {
  test("the same input and prompt give the same output every time", async () => {
    const input = { content: "Our startup shipped a new AI feature and the roadmap looks great" };
    const outputs = [];
    for (let i = 0; i < 20; i++) outputs.push((await runFake(input, seed)).output);
    expect(outputs[0]).not.toBeNull();
    expect(new Set(outputs.map((output) => JSON.stringify(output))).size).toBe(1);
  });

  test("a label's description in the prompt decides the category", async () => {
    const post = { content: "espresso time" };
    expect((await runFake(post, seed)).output).toMatchObject({ category: "general" });

    const prompt = withComponents({
      categories: [
        "- technology: software, hardware, AI, programming and gadgets",
        "- startups: founding, funding, espresso and growing a young company",
        "- product_management: roadmaps, user research, priorities and shipping features",
        "- general: anything else",
      ].join("\n"),
    });
    expect((await runFake(post, prompt)).output).toMatchObject({ category: "startups" });
  });

  test("a matching Post/Answer example in the prompt flips the answer", async () => {
    const post = { content: "my espresso machine broke this morning" };
    expect((await runFake(post, seed)).output).toEqual({ category: "general", sentiment: "neutral" });

    const prompt = withComponents({
      examples: ['Post: descaling the espresso machine, step by step', 'Answer: {"category": "technology", "sentiment": "negative"}'].join("\n"),
    });
    expect((await runFake(post, prompt)).output).toEqual({ category: "technology", sentiment: "negative" });
  });

  test("with no evidence it answers the label listed last in the prompt, not the schema's last", async () => {
    const post = { content: "zzz qqq" };
    expect((await runFake(post, seed)).output).toEqual({ category: "general", sentiment: "neutral" });

    const reordered = withComponents({
      categories: ["- general: anything else", "- technology: software", "- product_management: roadmaps", "- startups: funding"].join("\n"),
      sentiments: ["- neutral: factual", "- negative: worried", "- positive: happy"].join("\n"),
    });
    expect((await runFake(post, reordered)).output).toEqual({ category: "startups", sentiment: "positive" });
  });

  test("a tie goes to the label listed first", async () => {
    const post = { content: "software funding" };
    const technologyFirst = withComponents({ categories: ["- technology: software", "- startups: funding", "- product_management: roadmaps", "- general: other"].join("\n") });
    const startupsFirst = withComponents({ categories: ["- startups: funding", "- technology: software", "- product_management: roadmaps", "- general: other"].join("\n") });
    expect((await runFake(post, technologyFirst)).output).toMatchObject({ category: "technology" });
    expect((await runFake(post, startupsFirst)).output).toMatchObject({ category: "startups" });
  });

  test("the runner records the model name, token counts and latency", async () => {
    const run = await runFake({ content: "Proud of the team: we shipped the new software release" }, seed);
    expect(run).toMatchObject({ status: "succeeded", error: null, model: "fake/fake-keyword", output: { category: "technology", sentiment: "positive" } });
    expect(run.inputTokens).toBeGreaterThan(0);
    expect(run.outputTokens).toBeGreaterThan(0);
    expect(run.latencyMs).toBeGreaterThanOrEqual(0);

    // The fake counts the words it read, so a longer prompt costs more input tokens.
    const longer = withComponents({ examples: "Post: a long extra example about hiking and coffee and mountains\nAnswer: {\"category\": \"general\", \"sentiment\": \"positive\"}" });
    const longerRun = await runFake({ content: "Proud of the team: we shipped the new software release" }, longer);
    expect(longerRun.inputTokens!).toBeGreaterThan(run.inputTokens!);
  });

  test("latencyMs delays each call", async () => {
    const slow = createAgentRunner(postAnalyzer, fakeKeywordModel({ latencyMs: 150 }));
    for (let i = 0; i < 2; i++) {
      const run = await slow({ content: "a slow answer" }, seed);
      expect(run.status).toBe("succeeded");
      expect(run.latencyMs).toBeGreaterThanOrEqual(145);
    }
  });

  test("an aborted signal stops a delayed call and the runner rejects instead of recording a failed run", async () => {
    const slow = createAgentRunner(postAnalyzer, fakeKeywordModel({ latencyMs: 30_000 }));
    const controller = new AbortController();
    const started = performance.now();
    const pending = slow({ content: "never answered" }, seed, controller.signal);
    queueMicrotask(() => controller.abort(new Error("cancelled by the test")));
    await expect(pending).rejects.toThrow("cancelled by the test");
    expect(performance.now() - started).toBeLessThan(5_000);

    await expect(slow({ content: "never started" }, seed, AbortSignal.abort(new Error("already aborted")))).rejects.toThrow("already aborted");
  });
});

describe("a model that breaks the output contract gives a failed run with a readable error", () => {
  /** A FAKE model that always answers with the given text, standing in for a misbehaving provider. */
  function fakeModelAnswering(text: string) {
    return textModel("fake", "fixed-answer", async () => ({ text, inputTokens: 3, outputTokens: 3 }));
  }

  test("an answer that is not JSON", async () => {
    const run = await createAgentRunner(postAnalyzer, fakeModelAnswering("I think it is about technology."))({ content: "hi" }, seed);
    expect(run).toMatchObject({ status: "failed", output: null, inputTokens: null, outputTokens: null, model: "fake/fixed-answer" });
    expect(run.error).toMatch(/validation failed/i);
    expect(run.error).toContain('the model answered "I think it is about technology."');
  });

  test("a label outside the schema's enum", async () => {
    const run = await createAgentRunner(postAnalyzer, fakeModelAnswering('{"category": "sports", "sentiment": "positive"}'))({ content: "hi" }, seed);
    expect(run.status).toBe("failed");
    expect(run.output).toBeNull();
    expect(run.error).toContain("category");
    expect(run.error).toContain('"technology"');
    expect(run.error).toContain("sports");
  });

  test("a model that throws", async () => {
    const fakeThrowingModel = textModel("fake", "throwing", async () => {
      throw new Error("connection refused by the FAKE provider");
    });
    const run = await createAgentRunner(postAnalyzer, fakeThrowingModel)({ content: "hi" }, seed);
    expect(run.status).toBe("failed");
    expect(run.error).toContain("connection refused by the FAKE provider");
  });
});

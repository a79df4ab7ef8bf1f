import { describe, expect, test } from "vitest";
import { groundTruthScorer } from "../../scorers/ground-truth.ts";
import type { ScorerInput } from "../../scorers/types.ts";

const input = { content: "We raised our seed round!" };

function scorerInput(fields: Partial<ScorerInput>): ScorerInput {
  return { input, output: null, error: null, expected: null, ...fields };
}

describe("ground-truth scorer", () => {
  test("every expected field right scores 1 and names each field in the reason", async () => {
    const reward = await groundTruthScorer.score(
      scorerInput({ output: { category: "startups", sentiment: "positive" }, expected: { category: "startups", sentiment: "positive" } }),
    );
    expect(reward?.value).toBe(1);
    expect(reward?.reason).toContain("category right (startups)");
    expect(reward?.reason).toContain("sentiment right (positive)");
    expect(reward?.details).toEqual({ fields: { category: true, sentiment: true } });
  });

  test("some fields right scores 0.5 and says what was expected and what came instead", async () => {
    const reward = await groundTruthScorer.score(
      scorerInput({ output: { category: "technology", sentiment: "positive" }, expected: { category: "startups", sentiment: "positive" } }),
    );
    expect(reward?.value).toBe(0.5);
    expect(reward?.reason).toContain("category wrong (expected startups, got technology)");
    expect(reward?.reason).toContain("sentiment right (positive)");
    expect(reward?.details).toEqual({ fields: { category: false, sentiment: true } });
  });

  test("no field right scores -1", async () => {
    const reward = await groundTruthScorer.score(
      scorerInput({ output: { category: "general", sentiment: "neutral" }, expected: { category: "startups", sentiment: "positive" } }),
    );
    expect(reward?.value).toBe(-1);
    expect(reward?.details).toEqual({ fields: { category: false, sentiment: false } });
  });

  test("a failed run scores -1 and the reason mentions the failure", async () => {
    const reward = await groundTruthScorer.score(
      scorerInput({ output: null, error: "model returned invalid JSON", expected: { category: "startups", sentiment: "positive" } }),
    );
    expect(reward?.value).toBe(-1);
    expect(reward?.reason).toContain("the agent failed (model returned invalid JSON)");
    expect(reward?.reason).toContain("category wrong (expected startups, got nothing)");
    expect(reward?.details).toEqual({ fields: { category: false, sentiment: false } });
  });

  test("partial ground truth scores only the fields it has", async () => {
    // The sentiment is wrong, but with only a category expected it must not count against the run.
    const reward = await groundTruthScorer.score(
      scorerInput({ output: { category: "startups", sentiment: "negative" }, expected: { category: "startups" } }),
    );
    expect(reward?.value).toBe(1);
    expect(reward?.reason).toBe("category right (startups)");
    expect(reward?.details).toEqual({ fields: { category: true } });
  });

  test("an output missing an expected field counts that field as wrong", async () => {
    const reward = await groundTruthScorer.score(
      scorerInput({ output: { category: "startups" }, expected: { category: "startups", sentiment: "positive" } }),
    );
    expect(reward?.value).toBe(0.5);
    expect(reward?.reason).toContain("sentiment wrong (expected positive, got nothing)");
  });

  test("without ground truth the rollout is not scorable", async () => {
    const output = { category: "startups", sentiment: "positive" };
    expect(await groundTruthScorer.score(scorerInput({ output, expected: null }))).toBeUndefined();
    expect(await groundTruthScorer.score(scorerInput({ output, expected: {} }))).toBeUndefined();
  });

  test("the scorer is registered under a stable id", () => {
    expect(groundTruthScorer.id).toBe("ground-truth");
    expect(groundTruthScorer.description).toContain("+1");
  });
});

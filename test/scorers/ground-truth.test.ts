import { describe, expect, test } from "vitest";
import { z } from "zod";
import { defineAgent } from "../../agents/define.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import type { AgentDefinition } from "../../agents/types.ts";
import { groundTruth } from "../../scorers/ground-truth.ts";
import { exact, normalized, numeric, oneOf, setOverlap, tokenF1 } from "../../scorers/matchers.ts";
import { agentShape } from "../../scorers/registry.ts";
import type { RewardScorer, ScorerInput } from "../../scorers/types.ts";
import { fakeJudgeModel } from "../../scorers/fake-judge-model.ts";

const input = { content: "We raised our seed round!" };
const context = { judgeModel: fakeJudgeModel };

function scorerInput(fields: Partial<ScorerInput>): ScorerInput {
  return { input, output: null, error: null, expected: null, ...fields };
}

function scorerOf(agent: AgentDefinition, spec = groundTruth()): RewardScorer {
  return spec.build(agentShape(agent)) as RewardScorer;
}

const posts = scorerOf(postAnalyzer);
const score = (scorer: RewardScorer, fields: Partial<ScorerInput>) => scorer.score(scorerInput(fields), context);

const funding = defineAgent({
  id: "funding-test",
  input: z.object({ text: z.string() }),
  output: z.object({ company: z.string(), amountUsd: z.number(), round: z.enum(["seed", "series-a"]), investors: z.array(z.string()) }),
  prompt: { instructions: "Extract the funding round." },
  scorers: [groundTruth({ fields: { amountUsd: numeric({ relative: 0.05 }), company: oneOf() } })],
});

describe("ground-truth scorer", () => {
  test("every expected field right scores 1 and names each field in the reason", async () => {
    const reward = await score(posts, { output: { category: "startups", sentiment: "positive" }, expected: { category: "startups", sentiment: "positive" } });
    expect(reward?.value).toBe(1);
    expect(reward?.reason).toContain("category right (startups)");
    expect(reward?.reason).toContain("sentiment right (positive)");
    expect(reward?.details).toEqual({ fields: { category: true, sentiment: true }, credit: { category: 1, sentiment: 1 } });
  });

  test("the reward is 2 × the mean credit − 1: one field of two right scores 0, and the reason says what came instead", async () => {
    const reward = await score(posts, { output: { category: "technology", sentiment: "positive" }, expected: { category: "startups", sentiment: "positive" } });
    expect(reward?.value).toBe(0);
    expect(reward?.reason).toContain("category wrong (expected startups, got technology)");
    expect(reward?.reason).toContain("sentiment right (positive)");
    expect(reward?.details).toMatchObject({ fields: { category: false, sentiment: true } });
  });

  test("no field right scores -1; a failed run scores -1 and the reason mentions the failure", async () => {
    const wrong = await score(posts, { output: { category: "general", sentiment: "neutral" }, expected: { category: "startups", sentiment: "positive" } });
    expect(wrong?.value).toBe(-1);
    const failed = await score(posts, { output: null, error: "model returned invalid JSON", expected: { category: "startups", sentiment: "positive" } });
    expect(failed?.value).toBe(-1);
    expect(failed?.reason).toContain("the agent failed (model returned invalid JSON)");
    expect(failed?.reason).toContain("category wrong (expected startups, got nothing)");
  });

  test("partial ground truth scores only the fields it has; without ground truth the rollout is not scorable", async () => {
    const reward = await score(posts, { output: { category: "startups", sentiment: "negative" }, expected: { category: "startups" } });
    expect(reward?.value).toBe(1);
    expect(reward?.reason).toBe("category right (startups)");
    expect(await score(posts, { output: { category: "startups" }, expected: null })).toBeUndefined();
    expect(await score(posts, { output: { category: "startups" }, expected: {} })).toBeUndefined();
  });

  test("fields are compared by their own matchers: tolerant numbers, one-of names, set overlap for arrays", async () => {
    const scorer = funding.scorers[0]!.scorer as RewardScorer;
    const reward = await score(scorer, {
      output: { company: "Acme Robotics", amountUsd: 10_300_000, round: "seed", investors: ["Northwind Ventures", "Blue Fund", "Someone Else"] },
      expected: { company: ["Acme", "Acme Robotics Inc."], amountUsd: 10_000_000, round: "seed", investors: ["northwind ventures", "Blue Fund"] },
    });
    // company: "Acme Robotics" is neither "Acme" nor "Acme Robotics Inc." once normalised -> 0; amount within 5% -> 1;
    // round -> 1; investors: 2 of 3 answered are right and both expected found -> F1 0.8.
    expect(reward?.details).toEqual({ fields: { company: false, amountUsd: true, round: true, investors: false }, credit: { company: 0, amountUsd: 1, round: 1, investors: 0.8 } });
    expect(reward?.value).toBeCloseTo(2 * (2.8 / 4) - 1, 10);
    expect(reward?.reason).toContain("investors wrong 0.8 by set overlap");
  });

  test("a data set may list acceptable answers only for a one-of field", () => {
    expect(funding.expectedSchema.safeParse({ company: ["Acme", "Acme Inc."] }).success).toBe(true);
    expect(funding.expectedSchema.safeParse({ round: ["seed", "series-a"] }).success).toBe(false);
    expect(funding.expectedSchema.safeParse({ amount: 3 }).success).toBe(false);
  });
});

describe("field matchers", () => {
  test("exact compares JSON values whatever the key order; normalized ignores case, accents and punctuation", () => {
    expect(exact().credit({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 })).toBe(1);
    expect(exact().credit([1, 2], [2, 1])).toBe(0);
    expect(normalized().credit("Crème Brûlée, Inc.", "creme brulee inc")).toBe(1);
    expect(normalized().credit("Acme", "Acme Robotics")).toBe(0);
  });

  test("numeric: absolute or relative tolerance, never a non-number", () => {
    expect(numeric().credit(5, 5)).toBe(1);
    expect(numeric().credit(5, 5.01)).toBe(0);
    expect(numeric({ absolute: 0.5 }).credit(5, 5.4)).toBe(1);
    expect(numeric({ relative: 0.1 }).credit(100, 111)).toBe(0);
    expect(numeric({ relative: 0.1 }).credit(100, "100")).toBe(0);
    expect(() => numeric({ relative: -1 })).toThrow(/tolerances/);
  });

  test("setOverlap is the F1 of answered against expected items; tokenF1 the F1 of words", () => {
    expect(setOverlap().credit(["a", "b"], ["B", "a"])).toBe(1);
    expect(setOverlap().credit(["a", "b"], ["a"])).toBeCloseTo(2 / 3, 10);
    expect(setOverlap().credit([], [])).toBe(1);
    expect(setOverlap().credit(["a"], "a")).toBe(0);
    expect(tokenF1().credit("your order shipped today", "Your order has shipped!")).toBeCloseTo((2 * 0.75 * 0.75) / 1.5, 10);
    expect(tokenF1().credit("abc", "xyz")).toBe(0);
  });

  test("a free-text agent's answer is compared with the reference by token F1 by default", async () => {
    const writer = defineAgent({ id: "writer-test", input: z.object({ topic: z.string() }), output: "text", prompt: { instructions: "Write one sentence." } });
    const reward = await score(scorerOf(writer), { input: { topic: "x" }, output: { text: "the order shipped" }, expected: { text: "your order shipped" } });
    expect(reward?.details).toEqual({ fields: { text: false }, credit: { text: 0.667 } });
  });
});

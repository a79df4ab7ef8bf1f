import { describe, expect, test } from "vitest";
import { supportReply } from "../../agents/examples.ts";
import { ORDERS } from "../../agents/support-reply/orders.ts";
import { replyRules } from "../../agents/support-reply/reply-rules.ts";
import type { RewardScorer, ScorerInput } from "../../scorers/types.ts";

const rules = supportReply.scorers.find((scorer) => scorer.id === "reply-rules")!.scorer as RewardScorer;
const noJudge = { judgeModel: () => { throw new Error("the rule scorer needs no model"); } };
const order = ORDERS.get("A-1029")!;
const lookedUp = [{ name: "lookupOrder", args: { orderId: "A-1029" }, result: order }];

function run(text: string | null, overrides: Partial<ScorerInput> = {}): ScorerInput {
  return {
    input: { customer: "Dana Whitfield", orderId: "A-1029", message: "Where is my desk lamp?" },
    output: text === null ? null : { text },
    error: text === null ? "the model failed" : null,
    expected: { status: "shipped", mustMention: ["SW58802897"] },
    toolCalls: lookedUp,
    ...overrides,
  };
}

describe("support-reply's rule scorer (a plain Mastra createScorer scorer, weighted 2 beside the judge)", () => {
  test("it is the agent's scorer with weight 2, and the judge has the rubric", () => {
    expect(supportReply.scorers.map((scorer) => [scorer.id, scorer.weight])).toEqual([
      ["reply-rules", 2],
      ["judge", 1],
    ]);
    expect(replyRules.id).toBe("reply-rules");
  });

  test("a reply keeping every rule: +1", async () => {
    const reward = await rules.score(run("Hi Dana, your desk lamp has shipped with Swiftpost (tracking SW58802897) and should arrive Nov 30."), noJudge);
    expect(reward).toMatchObject({ value: 1, reason: "keeps all 6 rules", details: { score: 1, scale: "0..1" } });
  });

  test("each broken rule is named in the reason and costs its share", async () => {
    const reward = await rules.score(run("Your order is being prepared. We guarantee a discount for the trouble.", { toolCalls: [] }), noJudge);
    // 1 of 6 kept (at most 80 words) -> 2 × 1/6 − 1.
    expect(reward!.value).toBeCloseTo(2 / 6 - 1, 10);
    expect(reward!.reason).toBe(
      'keeps 1 of 6 rules; broke: looked up order A-1029; states the status (shipped); names the customer (Dana); mentions SW58802897; promises nothing (says "guarantee")',
    );
    const long = await rules.score(run(`Hi Dana, shipped, SW58802897. ${"More words here. ".repeat(30)}`), noJudge);
    expect(long!.reason).toBe("keeps 5 of 6 rules; broke: at most 80 words (has 94)");
  });

  test("without ground truth it checks the status the lookup returned, and what needs none", async () => {
    const reward = await rules.score(run("Hi Dana, it is on its way.", { expected: null }), noJudge);
    expect(reward).toMatchObject({ value: 1, reason: "keeps all 5 rules" });
    const missing = await rules.score(
      run("Hi Dana, we could not find that order.", { expected: null, toolCalls: [{ name: "lookupOrder", args: { orderId: "A-1029" }, result: { orderId: "A-1029", status: "not found" } }] }),
      noJudge,
    );
    expect(missing).toMatchObject({ value: 1, reason: "keeps all 5 rules" });
  });

  test("a failed run has no text to keep rules with", async () => {
    const reward = await rules.score(run(null, { toolCalls: [] }), noJudge);
    expect(reward!.value).toBeLessThan(0);
    expect(reward!.reason).toMatch(/^keeps 2 of 6 rules; broke: looked up order A-1029; states the status \(shipped\); names the customer \(Dana\); mentions SW58802897$/);
  });
});

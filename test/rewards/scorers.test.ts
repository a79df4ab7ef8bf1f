import { describe, expect, test } from "vitest";
import type { LanguageModelV2 } from "@ai-sdk/provider";
import { textModel } from "../../agents/models/text-model.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { loadConfig } from "../../config/load.ts";
import { parseSince } from "../../runtime/analysis.ts";
import { fakeJudgeModel } from "../../scorers/fake-judge-model.ts";
import { feedbackReward, feedbackSchema } from "../../scorers/human-feedback.ts";
import { judge, JUDGE_PROMPT } from "../../scorers/judge.ts";
import { outcomeSchema } from "../../scorers/proxy-metrics.ts";
import { agentShape, computedScorer, judgeModelSettings, rolloutReward, scoringPlan } from "../../scorers/registry.ts";
import type { RewardScorer, ScorerInput } from "../../scorers/types.ts";
import { lowerBound, meanInterval, normalQuantile, pairedDifferences, standardDeviation, tQuantile } from "../../stats/intervals.ts";

const POST = { content: "We closed our seed round and hired two engineers for the startup." };
const RIGHT = { category: "startups", sentiment: "positive" };

/** The post analyzer's judge (its default label rubric, or `rubric`) scoring on `model`. */
function judgeOn(model: LanguageModelV2, rubric?: string) {
  const scorer = judge(rubric ? { rubric } : {}).build(agentShape(postAnalyzer)) as RewardScorer;
  return { score: (input: ScorerInput) => scorer.score(input, { judgeModel: () => model }) };
}

/** A judge model that always answers `verdict`, and records the prompts it was shown. */
function scriptedJudge(verdict: unknown) {
  const prompts: string[] = [];
  const model = textModel("scripted", "judge", async (turns) => {
    prompts.push(turns.map((turn) => turn.text).join("\n"));
    return { text: JSON.stringify(verdict), inputTokens: 1, outputTokens: 1 };
  });
  return { model, prompts };
}

describe("LLM-as-judge", () => {
  test("the rating 1-5 maps to (rating - 3) / 2 and the judge's reason is kept, naming the judge", async () => {
    for (const [rating, value] of [[1, -1], [2, -0.5], [3, 0], [4, 0.5], [5, 1]] as const) {
      const judge = scriptedJudge({ rating, reason: `looks like a ${rating}` });
      const reward = await judgeOn(judge.model).score({ input: POST, output: RIGHT, error: null, expected: null });
      expect(reward).toEqual({ value, reason: `rated ${rating}/5 by scripted/judge: looks like a ${rating}`, details: { rating, judge: "scripted/judge" } });
    }
  });

  test("the judge prompt carries the agent's task, its label rubric, the input and the answer", async () => {
    const judge = scriptedJudge({ rating: 5, reason: "ok" });
    await judgeOn(judge.model).score({ input: POST, output: RIGHT, error: null, expected: null });
    const prompt = judge.prompts[0]!;
    expect(prompt).toContain(postAnalyzer.description);
    expect(prompt).toContain(`${JUDGE_PROMPT.rubric}\ncategory:\n- technology: software, hardware`);
    expect(prompt).toContain(`${JUDGE_PROMPT.input}\nPost: ${POST.content}`);
    expect(prompt).toContain(`${JUDGE_PROMPT.answer}\n${JSON.stringify(RIGHT)}`);
  });

  test("a failed run scores -1 without asking the model", async () => {
    const judge = scriptedJudge({ rating: 5, reason: "never asked" });
    const reward = await judgeOn(judge.model).score({ input: POST, output: null, error: "model timed out", expected: null });
    expect(reward?.value).toBe(-1);
    expect(reward?.reason).toContain("the agent failed (model timed out)");
    expect(judge.prompts).toHaveLength(0);
  });

  test("a judge answering outside the schema or unreachable throws: no reward is invented", async () => {
    const outOfRange = scriptedJudge({ rating: 9, reason: "too good" });
    await expect(judgeOn(outOfRange.model).score({ input: POST, output: RIGHT, error: null, expected: null })).rejects.toThrow();
    const down = textModel("down", "judge", async () => {
      throw new Error("connect ECONNREFUSED 127.0.0.1:1");
    });
    await expect(judgeOn(down).score({ input: POST, output: RIGHT, error: null, expected: null })).rejects.toThrow();
  });

  test("the agent's own rubric replaces the label rubric", async () => {
    const scripted = scriptedJudge({ rating: 4, reason: "ok" });
    await judgeOn(scripted.model, "- names the company\n- says how much was raised").score({ input: POST, output: RIGHT, error: null, expected: null });
    expect(scripted.prompts[0]).toContain(`${JUDGE_PROMPT.rubric}\n- names the company\n- says how much was raised\n`);
    expect(scripted.prompts[0]).not.toContain("- technology:");
  });

  test("the fake judge is deterministic and rates a fitting answer above an unfitting one", async () => {
    const scorer = judgeOn(fakeJudgeModel());
    const right = await scorer.score({ input: POST, output: RIGHT, error: null, expected: null });
    const wrong = await scorer.score({ input: POST, output: { category: "general", sentiment: "negative" }, error: null, expected: null });
    expect(right).toEqual(await scorer.score({ input: POST, output: RIGHT, error: null, expected: null }));
    expect(right!.value).toBeGreaterThan(wrong!.value);
    expect(wrong!.reason).toContain('category "general" does not fit the input');
  });
});

describe("human feedback", () => {
  test("rating 1..5 -> (rating - 3) / 2, thumbs -> ±1; the reason quotes the verdict, the user and the comment", () => {
    expect([1, 2, 3, 4, 5].map((rating) => feedbackReward({ rolloutId: "ro-1", rating }, "k").value)).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(feedbackReward({ rolloutId: "ro-1", thumbs: "up" }, "k").value).toBe(1);
    expect(feedbackReward({ rolloutId: "ro-1", thumbs: "down" }, "k").value).toBe(-1);
    const reward = feedbackReward({ rolloutId: "ro-1", rating: 2, comment: " wrong category ", user: "ana" }, "fb-7");
    expect(reward).toEqual({
      rolloutId: "ro-1",
      scorer: "human",
      value: -0.5,
      reason: 'rated 2/5 by ana: "wrong category"',
      details: { rating: 2, comment: " wrong category ", user: "ana" },
      dedupeKey: "fb-7",
    });
  });

  test("the body is checked: a rating out of range or not whole, both or neither verdict, unknown fields", () => {
    const problems = (body: unknown) => {
      const parsed = feedbackSchema.safeParse(body);
      return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
    };
    expect(problems({ rolloutId: "ro-1", rating: 4 })).toEqual([]);
    expect(problems({ rolloutId: "ro-1", rating: 6 })).toEqual(["rating: must be at most 5"]);
    expect(problems({ rolloutId: "ro-1", rating: 0 })).toEqual(["rating: must be at least 1"]);
    expect(problems({ rolloutId: "ro-1", rating: 3.5 })).toEqual(["rating: must be a whole number from 1 to 5"]);
    expect(problems({ rolloutId: "ro-1", rating: "4" })).toEqual(["rating: must be a whole number from 1 to 5"]);
    expect(problems({ rolloutId: "ro-1", rating: 4, thumbs: "up" })).toEqual(["rating: give exactly one of rating (1-5) and thumbs (up|down)"]);
    expect(problems({ rolloutId: "ro-1" })).toEqual(["rating: give exactly one of rating (1-5) and thumbs (up|down)"]);
    expect(problems({ rolloutId: "ro-1", thumbs: "sideways" })).toEqual(['thumbs: must be "up" or "down"']);
    expect(problems({ rolloutId: "ro-1", rating: 4, stars: 4 })[0]).toContain("stars");
  });
});

describe("proxy outcomes and configured scorers", () => {
  test("an outcome names exactly one of rolloutId and traceId, and a well-formed time", () => {
    expect(outcomeSchema.safeParse({ rolloutId: "ro-1", event: "engaged" }).success).toBe(true);
    expect(outcomeSchema.safeParse({ traceId: "abc", event: "engaged", value: 12, occurredAt: "2026-11-25T12:00:00Z", outcomeId: "o1" }).success).toBe(true);
    expect(outcomeSchema.safeParse({ rolloutId: "ro-1", traceId: "abc", event: "engaged" }).success).toBe(false);
    expect(outcomeSchema.safeParse({ event: "engaged" }).success).toBe(false);
    expect(outcomeSchema.safeParse({ rolloutId: "ro-1", event: "engaged", occurredAt: "yesterday" }).success).toBe(false);
  });

  test("a rollout's reward is the weighted mean of its counted scorers (several rewards of one scorer averaged first); `proxy` weighs every proxy event", () => {
    const rewards = [
      { scorer: "ground-truth", value: 1 },
      { scorer: "judge", value: 0 },
      { scorer: "human", value: -0.5 },
      { scorer: "human", value: 0.5 },
      { scorer: "proxy:engaged", value: 1 },
    ];
    expect(rolloutReward({ "ground-truth": 1 }, rewards)).toBe(1);
    expect(rolloutReward({ "ground-truth": 1, judge: 1 }, rewards)).toBe(0.5);
    expect(rolloutReward({ "ground-truth": 3, judge: 1 }, rewards)).toBe(0.75);
    expect(rolloutReward({ human: 1 }, rewards)).toBe(0);
    expect(rolloutReward({ proxy: 1 }, rewards)).toBe(1);
    expect(rolloutReward({ "proxy:bounced": 1 }, rewards)).toBeUndefined();
  });

  test("the agent's scorers make the plan; cycle.scorers picks among them and the built-ins; posted ones are not computed", () => {
    const own = scoringPlan(postAnalyzer, undefined);
    expect(own.ids).toEqual(["ground-truth"]);
    const configured = scoringPlan(postAnalyzer, ["ground-truth", "human", "proxy", "judge"]);
    expect(configured.computed.map((scorer) => scorer.id)).toEqual(["ground-truth", "judge"]);
    expect(configured.weights).toEqual({ "ground-truth": 1, human: 1, proxy: 1, judge: 1 });
    expect(() => computedScorer(configured, postAnalyzer, "human")).toThrow(/agl feedback, POST \/v1\/feedback/);
    expect(() => computedScorer(configured, postAnalyzer, "proxy:engaged")).toThrow(/POST \/v1\/outcomes/);
    expect(() => computedScorer(configured, postAnalyzer, "vibes")).toThrow(/no computed scorer "vibes"/);
    expect(() => scoringPlan(postAnalyzer, ["vibes"])).toThrow(/neither a built-in scorer/);
  });

  test("the judge model takes the agent model's settings unless scorers.judge says otherwise", () => {
    const base = { env: {}, overrides: { model: { provider: "openai-compatible", baseUrl: "http://127.0.0.1:9/v1", name: "agent-model", apiKey: "k1" } } };
    expect(judgeModelSettings(loadConfig(base)).model).toMatchObject({ provider: "openai-compatible", baseUrl: "http://127.0.0.1:9/v1", name: "agent-model", apiKey: "k1" });
    const judged = loadConfig({ ...base, env: { AGL_JUDGE_BASE_URL: "http://127.0.0.1:8/v1", AGL_JUDGE_MODEL: "judge-model" } });
    expect(judgeModelSettings(judged).model).toMatchObject({ provider: "openai-compatible", baseUrl: "http://127.0.0.1:8/v1", name: "judge-model", apiKey: "k1" });
    expect(judgeModelSettings(loadConfig({ env: { AGL_MODEL: "fake", AGL_JUDGE_PROVIDER: "local" } })).model.provider).toBe("local");
  });

  test("bad reward settings stop at load time with the key, the value and what is allowed", () => {
    expect(() => loadConfig({ env: { AGL_CYCLE_SCORERS: '["ground-truth","vibes"]' }, agents: [postAnalyzer] })).toThrow(
      /cycle\.scorers = \["ground-truth","vibes"\] \(from environment variable AGL_CYCLE_SCORERS\): "vibes" is neither built in .* nor a scorer of agent post-analyzer/,
    );
    expect(() => loadConfig({ env: { AGL_CYCLE_SCORERS: '["no spaces please"]' } })).toThrow(/cycle\.scorers\.0 = "no spaces please"/);
    expect(() => loadConfig({ env: { AGL_PROXY_REWARDS: '{"engaged": 2}' } })).toThrow(/rewards\.proxy\.engaged = 2/);
    expect(() => loadConfig({ env: { AGL_CYCLE_SCORERS: '["proxy:engaged"]', AGL_PROXY_REWARDS: '{"bounced": -1}' } })).toThrow(/names proxy:engaged.*configured events: bounced/);
    expect(() => loadConfig({ env: { AGL_MODEL: "fake", AGL_JUDGE_PROVIDER: "openai-compatible" } })).toThrow(/scorers\.judge\.baseUrl/);
    expect(loadConfig({ env: { AGL_CYCLE_SCORERS: '["ground-truth","proxy:engaged"]', AGL_PROXY_REWARDS: '{"engaged": 0.5}' } }).rewards.proxy).toEqual({ engaged: 0.5 });
  });
});

describe("analysis helpers", () => {
  test("Student's t quantiles within 0.005 of the table from 4 degrees of freedom (exact for 1 and 2), normal quantiles to 1e-6", () => {
    const table: [number, number, number][] = [
      [0.975, 1, 12.706],
      [0.975, 2, 4.303],
      [0.975, 4, 2.776],
      [0.975, 9, 2.262],
      [0.975, 40, 2.021],
      [0.9, 9, 1.383],
      [0.9, 59, 1.296],
      [0.95, 19, 1.729],
      [0.99, 10, 2.764],
    ];
    for (const [p, degrees, expected] of table) expect(Math.abs(tQuantile(p, degrees) - expected)).toBeLessThan(0.005);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 6);
    expect(normalQuantile(0.01)).toBeCloseTo(-2.326348, 6);
  });

  test("intervals: two-sided on a mean, one-sided lower bounds, paired differences over shared tasks", () => {
    const values = [1, 0, 1, 1, -1, 1, 0, 1];
    const interval = meanInterval(values);
    const half = (tQuantile(0.975, 7) * standardDeviation(values)) / Math.sqrt(8);
    expect(interval).toEqual({ n: 8, mean: 0.5, low: 0.5 - half, high: 0.5 + half });
    expect(meanInterval([0.3])).toEqual({ n: 1, mean: 0.3, low: null, high: null });
    expect(lowerBound(values, 0.9)).toBeCloseTo(0.5 - (tQuantile(0.9, 7) * standardDeviation(values)) / Math.sqrt(8), 12);
    expect(lowerBound([1], 0.9)).toBeNull();
    const incumbent = new Map([["t1", 0], ["t2", 1], ["t3", -1]]);
    const candidate = new Map([["t2", 1], ["t3", 1], ["t4", 1]]);
    expect(pairedDifferences(incumbent, candidate)).toEqual([0, 2]);
  });

  test("--since takes a time or a duration back from now, and says what it wants otherwise", () => {
    const now = new Date("2026-11-25T12:00:00Z");
    expect(parseSince("24h", "--since", now).toISOString()).toBe("2026-11-24T12:00:00.000Z");
    expect(parseSince("2026-11-20", "--since", now).toISOString()).toBe("2026-11-20T00:00:00.000Z");
    expect(parseSince("2026-11-20T08:30:00+01:00", "--since", now).toISOString()).toBe("2026-11-20T07:30:00.000Z");
    expect(() => parseSince("yesterday", "--since", now)).toThrow(/--since "yesterday" is neither a time/);
    expect(() => parseSince("24x", "--since", now)).toThrow(/--since/);
  });
});

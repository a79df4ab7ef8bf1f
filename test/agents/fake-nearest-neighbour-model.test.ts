import { describe, expect, test } from "vitest";
import { fakeNearestNeighbourModel } from "../../agents/models/fake-nearest-neighbour.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { createAgentRunner } from "../../agents/runner.ts";
import type { PromptContent } from "../../store/schema.ts";

const seed = postAnalyzer.prompt.seed;
const run = createAgentRunner(postAnalyzer, fakeNearestNeighbourModel());

function withComponents(components: Record<string, string>): PromptContent {
  return { ...seed, components: { ...seed.components, ...components } };
}

const EXAMPLES = [
  "Examples:",
  "",
  "Post: The bakery on my street sold out of croissants again",
  'Answer: {"category":"general","sentiment":"negative"}',
  "",
  "Post: Closed our seed round with two angels this week",
  'Answer: {"category":"startups","sentiment":"positive"}',
].join("\n");

const POSTS = ["Closed our seed round with two angels this week", "The bakery sold out again", "New laptop, same bugs", "Roadmap review went well", "Rain all weekend"];

describe("fake nearest-neighbour model through the Mastra runner", () => {
  test("with no demonstration it guesses: fixed per post, varied across posts, blind to instructions and label descriptions", async () => {
    const guesses = await Promise.all(POSTS.map(async (content) => (await run({ content }, seed)).output));
    expect(new Set(guesses.map((guess) => JSON.stringify(guess))).size).toBeGreaterThan(1);
    const reworded = withComponents({ instructions: "Classify the post. {{categories}} {{sentiments}}", categories: "- startups: seed round angels funding\n- technology: laptop bugs" });
    for (const [index, content] of POSTS.entries()) {
      expect((await run({ content }, seed)).output).toEqual(guesses[index]);
      expect((await run({ content }, reworded)).output).toEqual(guesses[index]);
    }
  });

  test("it answers like the demonstration sharing the most (rare) words with the post", async () => {
    const prompt = withComponents({ examples: EXAMPLES });
    expect((await run({ content: "the bakery sold out of bread" }, prompt)).output).toEqual({ category: "general", sentiment: "negative" });
    expect((await run({ content: "two angels joined our round" }, prompt)).output).toEqual({ category: "startups", sentiment: "positive" });
  });

  test("a post sharing no word with any demonstration gets the same guess as with none", async () => {
    const content = "Rain all weekend";
    expect((await run({ content }, withComponents({ examples: EXAMPLES }))).output).toEqual((await run({ content }, seed)).output);
  });
});

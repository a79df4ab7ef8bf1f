import { createTool } from "@mastra/core/tools";
import { describe, expect, test } from "vitest";
import { z } from "zod";
import { defineAgent } from "../../agents/define.ts";
import { fundingExtractor, supportReply } from "../../agents/examples.ts";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { createAgentRunner } from "../../agents/runner.ts";
import type { PromptContent } from "../../store/schema.ts";

function withComponents(prompt: PromptContent, components: Record<string, string>): PromptContent {
  return { ...prompt, components: { ...prompt.components, ...components } };
}

/** Demonstrations in the optimizer's format: a message line, then `Answer: …`. */
function examples(pairs: [message: string, answer: unknown][]): string {
  return ["Examples:", "", ...pairs.map(([message, answer]) => `${message}\nAnswer: ${typeof answer === "string" ? answer : JSON.stringify(answer)}\n`)].join("\n");
}

describe("the fake model extracts structured fields by patterns it induces from the demonstrations", () => {
  const extract = createAgentRunner(fundingExtractor, fakeKeywordModel());
  const seed = fundingExtractor.prompt.seed;
  const announcement = {
    text: "At a $900 million valuation, Brightforge closed a $110 million Series B led by Halcyon Growth, with participation from Nimbus Ventures and Fjord Ventures.",
  };
  const demonstrations = examples([
    [
      "Announcement: At a $2 billion valuation, Quillon raised $150 million in a Series D led by Orbit Fund, with participation from Aster Capital and Lumen Fund.",
      { company: "Quillon", amountUsd: 150_000_000, round: "growth", investors: ["Orbit Fund", "Aster Capital", "Lumen Fund"] },
    ],
    [
      "Announcement: Valued at $400 million, Stackwise closed a $45 million Series C led by Granite Peak, with participation from Redwood Row.",
      { company: "Stackwise", amountUsd: 45_000_000, round: "series-c", investors: ["Granite Peak", "Redwood Row"] },
    ],
  ]);

  test("zero-shot it guesses: the first name-like span, the first amount, every other name (a label named, Series B, is no name)", async () => {
    const run = await extract(announcement, seed);
    expect(run.output).toEqual({
      company: "At",
      amountUsd: 900_000_000,
      round: "series-b",
      investors: ["Brightforge", "Halcyon Growth", "Nimbus Ventures", "Fjord Ventures"],
    });
  });

  test("two demonstrations teach it where the company, the round's amount and the investors stand", async () => {
    const run = await extract(announcement, withComponents(seed, { examples: demonstrations }));
    expect(run.output).toEqual({ company: "Brightforge", amountUsd: 110_000_000, round: "series-b", investors: ["Halcyon Growth", "Nimbus Ventures", "Fjord Ventures"] });
  });

  test("amounts are read with their scale and currency: $1.5B, 12 million dollars, $750,000, €30M beside its dollar figure", async () => {
    const amountOf = async (text: string, prompt = seed) => (await extract({ text }, prompt)).output?.amountUsd;
    expect(await amountOf("Acme raised $1.5B.")).toBe(1_500_000_000);
    expect(await amountOf("Acme raised 12 million dollars.")).toBe(12_000_000);
    expect(await amountOf("Acme raised $750,000 from angels.")).toBe(750_000);
    expect(await amountOf("Acme raised US$2.5m.")).toBe(2_500_000);
    // Zero-shot the first amount (the euros); a demonstration converting euros to its dollar figure teaches it to take the dollars.
    const euros = "Nordlys lands €30 million (about $32.4 million) Series B from Aster Capital.";
    expect(await amountOf(euros)).toBe(30_000_000);
    const taught = withComponents(seed, {
      examples: examples([["Announcement: Koffer secured €18 million (about $19.4 million) in a Series B.", { company: "Koffer", amountUsd: 19_400_000, round: "series-b", investors: [] }]]),
    });
    expect(await amountOf(euros, taught)).toBe(32_400_000);
  });

  test("a round whose name the message writes out is answered, whatever the demonstrations vote", async () => {
    const seedVotes = withComponents(seed, {
      examples: examples([
        ["Announcement: Payzo closed a $3.5 million seed round led by Oakline Capital.", { company: "Payzo", amountUsd: 3_500_000, round: "seed", investors: ["Oakline Capital"] }],
        ["Announcement: Kiln closed a $1.2 million seed round led by Meridian Seed.", { company: "Kiln", amountUsd: 1_200_000, round: "seed", investors: ["Meridian Seed"] }],
      ]),
    });
    const round = async (text: string) => (await extract({ text }, seedVotes)).output?.round;
    expect(await round("Lumio closed a $12 million Series A led by Northwind Ventures.")).toBe("series-a");
    expect(await round("Lumio closed a $40 million series-c round led by Northwind Ventures.")).toBe("series-c");
    // No round named: the demonstrations' votes decide, as they do for the post analyzer's labels.
    expect(await round("Lumio closed a $2 million round led by Northwind Ventures.")).toBe("seed");
  });

  test("words most demonstrations share (the task's own vocabulary) give no vote: the distinctive ones decide", async () => {
    const prompt = withComponents(seed, {
      examples: examples([
        ["Announcement: Foo raised $3 million in a seed round led by Pinegate.", { company: "Foo", amountUsd: 3_000_000, round: "seed", investors: ["Pinegate"] }],
        ["Announcement: Bar raised $9 million in a seed round led by Copperleaf.", { company: "Bar", amountUsd: 9_000_000, round: "seed", investors: ["Copperleaf"] }],
        ["Announcement: Baz raised $300 million in late-stage funding led by Kestrel Partners.", { company: "Baz", amountUsd: 300_000_000, round: "growth", investors: ["Kestrel Partners"] }],
      ]),
    });
    // "raised", "million", "round", "led" and "seed" are in most demonstrations; "funding" and "kestrel" only in the growth one.
    const run = await extract({ text: "Acme raised $5 million in funding led by Kestrel Partners." }, prompt);
    expect(run.output?.round).toBe("growth");
  });

  test("the same prompt and message always give the same answer", async () => {
    const prompt = withComponents(seed, { examples: demonstrations });
    const outputs = new Set<string>();
    for (let i = 0; i < 5; i++) outputs.add(JSON.stringify((await extract(announcement, prompt)).output));
    expect(outputs.size).toBe(1);
  });
});

describe("the fake model calls tools with arguments from the message, then answers from their results", () => {
  const reply = createAgentRunner(supportReply, fakeKeywordModel());
  const seed = supportReply.prompt.seed;

  test("it looks the order up with the id matching the tool's pattern and states what the lookup said", async () => {
    const run = await reply({ customer: "Dana Whitfield", orderId: "A-1029", message: "Where is my desk lamp?" }, seed);
    expect(run.status).toBe("succeeded");
    expect(run.toolCalls).toEqual([
      {
        name: "lookupOrder",
        args: { orderId: "A-1029" },
        result: { orderId: "A-1029", item: "desk lamp", status: "shipped", placedOn: "Nov 22", carrier: "Swiftpost", tracking: "SW58802897", eta: "Nov 30" },
      },
    ]);
    // Asked about none of the facts by name: it states them all.
    expect(run.output?.text).toBe("Order id: A-1029. Item: desk lamp. Status: shipped. Placed on: Nov 22. Carrier: Swiftpost. Tracking: SW58802897. Eta: Nov 30.");
  });

  test("zero-shot it says only what is asked about, and greets by name only a customer who greeted", async () => {
    const tracking = await reply({ customer: "Piotr Nowak", orderId: "A-1029", message: "Hi, can you send me the tracking number please?" }, seed);
    expect(tracking.output?.text).toBe("Hi Piotr, Tracking: SW58802897.");
    const unknown = await reply({ customer: "Sun Li", orderId: "B-1000", message: "Has my order shipped?" }, seed);
    expect(unknown.output?.text).toBe("Order id: B-1000. Status: not found.");
  });

  test("a demonstration is its reply template: another customer's name and facts are replaced by this one's", async () => {
    const prompt = withComponents(seed, {
      examples: examples([
        [
          "Customer: Rania Aziz Order: A-1175 My sewing machine is overdue. What's the new date?",
          "Good morning Rania, Status: delayed. Tracking: SW44970682. Delay reason: a missed connection between depots. Sorry for the wait!",
        ],
      ]),
    });
    const run = await reply({ customer: "Omar Haddad", orderId: "A-1005", message: "My shoes are overdue, when do they ship?" }, prompt);
    // A-1005 is processing: no tracking and no delay to report, so those clauses go; the ship date asked about is added.
    expect(run.output?.text).toBe("Good morning Omar, Status: processing. Ships by: Dec 4. Sorry for the wait!");
  });

  test("it obeys instructions to greet the customer by name and to stay under a number of words", async () => {
    const prompt = withComponents(seed, {
      instructions: `${seed.components.instructions}\nAlways greet the customer by their first name. Keep the reply to at most 8 words.`,
    });
    const run = await reply({ customer: "Dana Whitfield", orderId: "A-1029", message: "Where is my desk lamp?" }, prompt);
    expect(run.output?.text).toBe("Hi Dana, Order id: A-1029. Item: desk lamp.");
  });

  test("no call when no offered tool gets its required arguments from the message; a `Key: value` line can supply one", async () => {
    const findCustomer = createTool({
      id: "findCustomer",
      description: "Finds a customer",
      inputSchema: z.object({ customerName: z.string(), limit: z.number().int().optional() }),
      execute: async ({ customerName }) => ({ customerName, plan: "gold" }),
    });
    const agent = defineAgent({ id: "crm", input: z.object({ note: z.string() }), output: "text", tools: { findCustomer }, prompt: { instructions: "Help." } });
    const run = createAgentRunner(agent, fakeKeywordModel());
    const named = await run({ note: "Customer name: Ada Byron\nLimit: 3\nWhat plan is she on?" }, agent.prompt.seed);
    expect(named.toolCalls).toEqual([{ name: "findCustomer", args: { customerName: "Ada Byron", limit: 3 }, result: { customerName: "Ada Byron", plan: "gold" } }]);
    expect(named.output?.text).toBe("Plan: gold.");
    const unnamed = await run({ note: "What plan is she on?" }, agent.prompt.seed);
    expect(unnamed.toolCalls).toEqual([]);
    expect(unnamed.output?.text).toBe("Re: What plan is she on?");
  });
});

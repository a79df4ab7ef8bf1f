import { Agent } from "@mastra/core/agent";
import { createScorer } from "@mastra/core/evals";
import { configuredModel, defineAgent, groundTruth } from "agent-training-loop";
import { z } from "zod";

const ticket = z.object({ subject: z.string().min(1), body: z.string().min(1) });
const triage = z.object({
  queue: z.enum(["billing", "bugs", "account", "other"]),
  priority: z.enum(["low", "normal", "urgent"]),
});

// Your own Mastra agent: its model, tools and memory stay yours. agl only hands it the instructions of
// the prompt version under test, per request. (This one runs on the model agl is configured with, so the
// example works offline; yours would say e.g. `model: openai("gpt-4o-mini")`.)
const agent = new Agent({
  id: "ticket-triage",
  name: "Ticket triage",
  instructions: "You route support tickets.",
  model: configuredModel(),
});

// A scorer of your own, written as any Mastra scorer: an outage filed as "low" is the mistake that hurts most.
const noMissedOutage = createScorer({ id: "no-missed-outage", description: "An outage or data loss is never triaged as low priority." })
  .generateScore(({ run }) => {
    const text = `${run.input.subject} ${run.input.body}`.toLowerCase();
    const severe = /(down|outage|data loss|cannot log in|can't log in)/.test(text);
    return severe && run.output.priority === "low" ? 0 : 1;
  })
  .generateReason(({ score }) => (score === 1 ? "no severe ticket was triaged as low" : "a severe ticket was triaged as low priority"));

export const ticketTriage = defineAgent({
  id: "ticket-triage",
  description: "Routes a customer support ticket to a queue and sets its priority.",
  agent,
  input: ticket,
  output: triage,
  message: (input) => `Subject: ${input.subject}\n\n${input.body}`,
  prompt: {
    components: {
      instructions: "Route the support ticket to one queue and give it a priority.\n\nQueues:\n{{queues}}\n\nPriorities:\n{{priorities}}\n\nAnswer with JSON: {\"queue\": …, \"priority\": …}.",
      queues: [
        "- billing: invoices, charges, refunds and plans",
        "- bugs: something in the product is broken",
        "- account: sign-in, passwords and user settings",
        "- other: anything else",
      ].join("\n"),
      priorities: ["- low: questions and wishes", "- normal: a problem with a workaround", "- urgent: customers are blocked or losing data"].join("\n"),
    },
    labels: { queue: "queues", priority: "priorities" },
  },
  scorers: [groundTruth({ weight: 3 }), noMissedOutage],
  datasets: { tickets: new URL("../data/tickets.jsonl", import.meta.url) },
});

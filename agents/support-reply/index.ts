import { z } from "zod";
import { judge } from "../../scorers/judge.ts";
import { defineAgent } from "../define.ts";
import { lookupOrder, ORDER_ID, ORDER_STATUSES } from "./orders.ts";
import { MAX_REPLY_WORDS, replyRules } from "./reply-rules.ts";

export const customerMessageSchema = z
  .object({
    customer: z.string().trim().min(1, "must not be empty").max(100),
    orderId: z.string().regex(ORDER_ID, "must look like A-1042"),
    message: z.string().trim().min(1, "must not be empty").max(2_000, "must be at most 2000 characters"),
  })
  .strict();

/** What a task knows about the right reply: the order's true status and the details the customer needs. */
export const replyTruthSchema = z.object({
  status: z.enum([...ORDER_STATUSES, "not_found"]),
  mustMention: z.array(z.string().min(1)),
});

export const supportReply = defineAgent({
  id: "support-reply",
  description: "Answers a customer's message about an order in a short free-text reply, after looking the order up with a tool.",
  tools: { lookupOrder },
  input: customerMessageSchema,
  output: "text",
  expected: replyTruthSchema,
  message: (input) => `Customer: ${input.customer}\nOrder: ${input.orderId}\n\n${input.message}`,
  prompt: {
    components: {
      instructions: [
        "You answer customer messages for an online shop.",
        "Look the order up with the lookupOrder tool, then reply to the customer in plain text.",
        "",
        "{{policy}}",
        "",
        "{{examples}}",
      ].join("\n"),
      policy: "Only state what the order lookup says. Never offer discounts, vouchers or compensation.",
      examples: "",
    },
    // The shop's policy is not the optimizer's to change.
    editable: ["instructions", "examples"],
    examples: "examples",
  },
  scorers: [
    { scorer: replyRules, weight: 2 },
    judge({
      rubric: [
        "- Greets the customer by their first name.",
        "- States the order's current status as the lookup reported it.",
        "- Gives the detail the customer asked for: tracking number, delivery date or refund amount.",
        `- Is polite and short (at most ${MAX_REPLY_WORDS} words).`,
        "- Promises nothing the lookup does not support: no discounts, vouchers or invented dates.",
      ].join("\n"),
    }),
  ],
  datasets: { "support-messages": new URL("./data/support-messages.jsonl", import.meta.url) },
});

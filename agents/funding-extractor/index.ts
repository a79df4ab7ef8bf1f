import { z } from "zod";
import { groundTruth } from "../../scorers/ground-truth.ts";
import { exact, normalized, numeric, setOverlap } from "../../scorers/matchers.ts";
import { defineAgent } from "../define.ts";

export const ROUNDS = ["pre-seed", "seed", "series-a", "series-b", "series-c", "growth"] as const;

export const announcementSchema = z
  .object({
    text: z.string().trim().min(1, "must not be empty").max(2_000, "must be at most 2000 characters"),
  })
  .strict();

// Bounded strings and lists: a small local model answers through a grammar built from this schema, and
// the bounds keep it from writing until it runs out of tokens.
export const fundingSchema = z.object({
  company: z.string().min(1).max(60),
  amountUsd: z.number().nonnegative(),
  round: z.enum(ROUNDS),
  investors: z.array(z.string().min(1).max(60)).max(8),
});

export type Funding = z.infer<typeof fundingSchema>;

export const fundingExtractor = defineAgent({
  id: "funding-extractor",
  description: "Reads a startup funding announcement and extracts the company, the amount in US dollars, the round and the investors.",
  input: announcementSchema,
  output: fundingSchema,
  message: (input) => `Announcement: ${input.text}`,
  prompt: {
    components: {
      instructions: [
        "You read one startup funding announcement and extract its facts.",
        "",
        "- company: the company that raised the money",
        "- amountUsd: the amount of this round in US dollars, as a plain number (12000000 for $12M)",
        "- round: one of the rounds below",
        "- investors: the investors named as putting money into this round (an empty list when none is named)",
        "",
        "Rounds:",
        "{{rounds}}",
        "",
        "{{examples}}",
        "",
        'Answer with JSON only: {"company": "…", "amountUsd": <number>, "round": "<round>", "investors": ["…"]}.',
      ].join("\n"),
      rounds: [
        "- pre-seed: the very first money, from angels or friends and family",
        "- seed: a seed round to build the first product",
        "- series-a: a Series A round",
        "- series-b: a Series B round",
        "- series-c: a Series C round",
        "- growth: a later round for a large company",
      ].join("\n"),
      examples: "",
    },
    labels: { round: "rounds" },
    examples: "examples",
  },
  // Field by field, tolerant where announcements are: "Acme, Inc." is "acme inc", an amount converted
  // from euros may be a little off, and investors earn partial credit.
  scorers: [
    groundTruth({
      fields: { company: normalized(), amountUsd: numeric({ relative: 0.05 }), round: exact(), investors: setOverlap() },
    }),
  ],
  datasets: { "funding-announcements": new URL("./data/funding-announcements.jsonl", import.meta.url) },
});

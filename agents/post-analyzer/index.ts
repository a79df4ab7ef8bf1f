import { z } from "zod";
import { groundTruth } from "../../scorers/ground-truth.ts";
import { defineAgent } from "../define.ts";

export const CATEGORIES = ["technology", "startups", "product_management", "general"] as const;
export const SENTIMENTS = ["positive", "neutral", "negative"] as const;

export const postInputSchema = z
  .object({
    content: z.string().trim().min(1, "must not be empty").max(5_000, "must be at most 5000 characters"),
    id: z.string().min(1).optional(),
    author: z.string().min(1).optional(),
  })
  .strict();

export const postAnalysisSchema = z.object({
  category: z.enum(CATEGORIES),
  sentiment: z.enum(SENTIMENTS),
});

export type PostInput = z.infer<typeof postInputSchema>;
export type PostAnalysis = z.infer<typeof postAnalysisSchema>;

/** Version 1: a plain instruction listing the four categories with one-line descriptions. */
const seedPrompt = {
  components: {
    instructions: [
      "You read one short social media post and classify it.",
      "",
      "Categories:",
      "{{categories}}",
      "",
      "Sentiment is the author's attitude:",
      "{{sentiments}}",
      "",
      "{{examples}}",
      "",
      'Answer with JSON only: {"category": "<category>", "sentiment": "<sentiment>"}.',
    ].join("\n"),
    categories: [
      "- technology: software, hardware, AI, programming and gadgets",
      "- startups: founding, funding and growing a young company",
      "- product_management: roadmaps, user research, priorities and shipping features",
      "- general: anything else, such as daily life, food, sport, travel or family",
    ].join("\n"),
    sentiments: [
      "- positive: happy, excited, proud or grateful",
      "- negative: frustrated, disappointed, angry or worried",
      "- neutral: factual, informative or mixed",
    ].join("\n"),
    examples: "",
  },
};

export const postAnalyzer = defineAgent({
  id: "post-analyzer",
  description: "Classifies a short social media post by category and sentiment.",
  input: postInputSchema,
  output: postAnalysisSchema,
  message: (input) => `Post: ${input.content}`,
  prompt: {
    components: seedPrompt.components,
    labels: { category: "categories", sentiment: "sentiments" },
    examples: "examples",
  },
  scorers: [groundTruth()],
  datasets: { posts: new URL("./data/posts.jsonl", import.meta.url) },
});

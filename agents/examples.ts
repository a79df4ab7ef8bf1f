import { fundingExtractor } from "./funding-extractor/index.ts";
import { postAnalyzer } from "./post-analyzer/index.ts";
import { supportReply } from "./support-reply/index.ts";
import type { AgentDefinition } from "./types.ts";

/**
 * The example agents shipped with agl, registered when a project has no config of its own: the quick
 * start needs nothing else. One of each shape the loop trains: a classifier (closed label sets), a
 * structured extractor scored field by field, and a free-text agent that calls a tool and is scored by
 * a rubric judge and a rule-based Mastra scorer.
 */
export const bundledAgents: readonly AgentDefinition[] = [postAnalyzer, fundingExtractor, supportReply];

export { fundingExtractor, postAnalyzer, supportReply };

import { postAnalyzer } from "./post-analyzer/index.ts";
import type { AgentDefinition } from "./types.ts";

/** The example agents shipped with agl, registered when a project has no config of its own: the quick start needs nothing else. */
export const bundledAgents: readonly AgentDefinition[] = [postAnalyzer];

export { postAnalyzer };

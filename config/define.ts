import type { AgentDefinition } from "../agents/types.ts";
import type { ConfigInput } from "./schema.ts";

/** An `agl.config.ts`: the project's agents and any settings of `agl.config.json` (environment variables still win). */
export interface ProjectConfig extends ConfigInput {
  agents: AgentDefinition[];
}

/** Types the default export of `agl.config.ts`; the loader checks it when a command starts. */
export function defineConfig(config: ProjectConfig): ProjectConfig {
  return config;
}

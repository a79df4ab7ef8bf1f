import type { LanguageModelV2 } from "@ai-sdk/provider";
import type { LoadedConfig } from "../../config/load.ts";
import { createLanguageModel } from "./index.ts";

let active: Pick<LoadedConfig, "dataPath" | "model"> | undefined;
let resolved: LanguageModelV2 | undefined;
let inUse = false;

/** Called once the project's configuration is loaded: `configuredModel()` then follows it. */
export function useConfiguredModelSettings(config: Pick<LoadedConfig, "dataPath" | "model">): void {
  active = config;
  resolved = undefined;
}

/**
 * The model agl's configuration selects (`model.provider`: the local SmolLM2, an OpenAI-compatible
 * endpoint, or the deterministic fake), as an AI SDK model to give your own Mastra agent. Resolved on
 * first use, so the settings of the command that loads your agent apply (`AGL_MODEL=fake` in tests).
 * Your agent may of course keep its own model instead; this is for trying the loop offline.
 */
export function configuredModel(): LanguageModelV2 {
  inUse = true;
  const model = (): LanguageModelV2 => {
    if (!resolved) {
      if (!active) throw new Error("configuredModel() is used before agl loaded its configuration: use it in an agent that agl runs.");
      resolved = createLanguageModel(active);
    }
    return resolved;
  };
  return {
    specificationVersion: "v2",
    get provider() {
      return model().provider;
    },
    get modelId() {
      return model().modelId;
    },
    get supportedUrls() {
      return model().supportedUrls;
    },
    doGenerate: (options) => model().doGenerate(options),
    doStream: (options) => model().doStream(options),
  };
}

/** Whether an agent of this process was given `configuredModel()`: a worker then runs agl's configured model for it. */
export function configuredModelInUse(): boolean {
  return inUse;
}

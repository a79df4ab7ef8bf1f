import { join } from "node:path";
import { INSTALL_ROOT } from "../../config/paths.ts";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import type { LanguageModelV2 } from "@ai-sdk/provider";
import type { LoadedConfig } from "../../config/load.ts";
import { fakeKeywordModel } from "./fake-keyword.ts";
import { fakeNearestNeighbourModel } from "./fake-nearest-neighbour.ts";
import { localLlamaModel } from "./local-llama.ts";

export const LOCAL_MODEL_NAME = "SmolLM2-135M-Instruct";
export const LOCAL_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf";

/** Where the setup command installs the local model: an installed artifact of agl, whatever data folder a project uses. */
export const INSTALLED_MODEL_PATH = join(INSTALL_ROOT, ".agl", "models", LOCAL_MODEL_FILE);

export function localModelPath(config: Pick<LoadedConfig, "model">): string {
  return config.model.path ?? INSTALLED_MODEL_PATH;
}

/**
 * The model every agent run uses, chosen by configuration (AGL_MODEL), never by code edits. A caller
 * whose model does another job than the agent's (the LLM judge) brings the deterministic fake for it,
 * whichever fake the agent has.
 */
export function createLanguageModel(config: Pick<LoadedConfig, "dataPath" | "model">, fake: () => LanguageModelV2 = () => defaultFake(config)): LanguageModelV2 {
  const model = config.model;
  switch (model.provider) {
    case "fake":
    case "fake-nearest-neighbour":
      return fake();
    case "local":
      return localLlamaModel({
        path: localModelPath(config),
        name: model.name ?? LOCAL_MODEL_NAME,
        threads: model.threads,
        contextSize: model.contextSize,
        temperature: model.temperature,
        maxOutputTokens: model.maxOutputTokens,
      });
    case "openai-compatible": {
      const provider = createOpenAICompatible({
        name: "openai-compatible",
        baseURL: model.baseUrl!,
        ...(model.apiKey ? { apiKey: model.apiKey } : {}),
        supportsStructuredOutputs: true,
      });
      return provider.chatModel(model.name ?? "gpt-4o-mini");
    }
  }
}

function defaultFake(config: Pick<LoadedConfig, "model">): LanguageModelV2 {
  return config.model.provider === "fake-nearest-neighbour" ? fakeNearestNeighbourModel() : fakeKeywordModel({ latencyMs: config.model.latencyMs });
}

export function describeModel(config: Pick<LoadedConfig, "model">): string {
  const model = config.model;
  if (model.provider === "fake") return `fake-keyword (deterministic fake${model.latencyMs ? `, ${model.latencyMs} ms per call` : ""})`;
  if (model.provider === "fake-nearest-neighbour") return "fake-nearest-neighbour (deterministic fake: answers like the closest few-shot example)";
  if (model.provider === "local") return `${model.name ?? LOCAL_MODEL_NAME} (local, CPU, ${model.threads} thread${model.threads === 1 ? "" : "s"})`;
  return `${model.name ?? "gpt-4o-mini"} at ${model.baseUrl}`;
}

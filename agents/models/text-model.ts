import type { LanguageModelV2, LanguageModelV2CallOptions, LanguageModelV2Prompt, LanguageModelV2StreamPart } from "@ai-sdk/provider";

export interface TextCompletion {
  text: string;
  inputTokens: number;
  outputTokens: number;
}

export interface ChatTurn {
  role: "system" | "user" | "assistant";
  text: string;
}

/**
 * Wraps a function that answers a chat with one text into an AI SDK v2 language model, with both the
 * generate and the stream entry points Mastra may call. Tool calls and files are not supported: the
 * agents trained here answer with structured text.
 */
export function textModel(
  provider: string,
  modelId: string,
  complete: (turns: ChatTurn[], options: LanguageModelV2CallOptions) => Promise<TextCompletion>,
): LanguageModelV2 {
  return {
    specificationVersion: "v2",
    provider,
    modelId,
    supportedUrls: {},
    async doGenerate(options) {
      const completion = await complete(chatTurns(options.prompt), options);
      return {
        content: [{ type: "text", text: completion.text }],
        finishReason: "stop",
        usage: usageOf(completion),
        warnings: [],
      };
    },
    async doStream(options) {
      const completion = await complete(chatTurns(options.prompt), options);
      const parts: LanguageModelV2StreamPart[] = [
        { type: "stream-start", warnings: [] },
        { type: "text-start", id: "text" },
        { type: "text-delta", id: "text", delta: completion.text },
        { type: "text-end", id: "text" },
        { type: "finish", finishReason: "stop", usage: usageOf(completion) },
      ];
      return {
        stream: new ReadableStream<LanguageModelV2StreamPart>({
          start(controller) {
            for (const part of parts) controller.enqueue(part);
            controller.close();
          },
        }),
      };
    },
  };
}

function usageOf(completion: TextCompletion) {
  return {
    inputTokens: completion.inputTokens,
    outputTokens: completion.outputTokens,
    totalTokens: completion.inputTokens + completion.outputTokens,
  };
}

export function chatTurns(prompt: LanguageModelV2Prompt): ChatTurn[] {
  return prompt.map((message) => {
    if (message.role === "system") return { role: "system", text: message.content };
    const text = message.content
      .map((part) => (part.type === "text" ? part.text : ""))
      .join("");
    return { role: message.role === "user" ? "user" : "assistant", text };
  });
}

/** The JSON schema the caller asked the answer to follow, if any. */
export function responseSchema(options: LanguageModelV2CallOptions): Record<string, unknown> | undefined {
  return options.responseFormat?.type === "json" ? (options.responseFormat.schema as Record<string, unknown> | undefined) : undefined;
}

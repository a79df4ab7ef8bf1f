import type {
  LanguageModelV2,
  LanguageModelV2CallOptions,
  LanguageModelV2Content,
  LanguageModelV2FunctionTool,
  LanguageModelV2Prompt,
  LanguageModelV2StreamPart,
  LanguageModelV2ToolResultOutput,
} from "@ai-sdk/provider";

/** A tool call a model asks for: the tool's name and its arguments (an object following the tool's input schema). */
export interface ModelToolCall {
  name: string;
  args: Record<string, unknown>;
}

export interface TextCompletion {
  text: string;
  inputTokens: number;
  outputTokens: number;
  /** Tools to call before answering; the caller (Mastra) runs them and asks again with their results. */
  toolCalls?: ModelToolCall[];
}

/** What a tool answered, as the conversation carries it back to the model. */
export interface ToolResult {
  toolCallId: string;
  toolName: string;
  /** The tool's result (an error's text for a tool that failed). */
  result: unknown;
  isError: boolean;
}

export interface ChatTurn {
  role: "system" | "user" | "assistant" | "tool";
  /** The turn's text; for a tool turn, its results as JSON lines. */
  text: string;
  /** An assistant turn's tool calls. */
  toolCalls?: (ModelToolCall & { toolCallId: string })[];
  /** A tool turn's results. */
  toolResults?: ToolResult[];
}

/**
 * Wraps a function that answers a chat into an AI SDK v2 language model, with both the generate and the
 * stream entry points Mastra may call. The function answers with a text or with tool calls: these go
 * out as `tool-call` content (finish reason `tool-calls`), and the tools' results come back in the next
 * call's prompt as a `tool` turn. Files are not supported.
 */
export function textModel(
  provider: string,
  modelId: string,
  complete: (turns: ChatTurn[], options: LanguageModelV2CallOptions) => Promise<TextCompletion>,
): LanguageModelV2 {
  const answer = async (options: LanguageModelV2CallOptions) => {
    const turns = chatTurns(options.prompt);
    const completion = await complete(turns, options);
    // Ids only have to be unique within one conversation: the turn count keeps later steps apart.
    const calls = (completion.toolCalls ?? []).map((call, index) => ({ ...call, toolCallId: `call-${turns.length}-${index}` }));
    return { completion, calls };
  };
  return {
    specificationVersion: "v2",
    provider,
    modelId,
    supportedUrls: {},
    async doGenerate(options) {
      const { completion, calls } = await answer(options);
      const content: LanguageModelV2Content[] = [];
      if (completion.text !== "" || calls.length === 0) content.push({ type: "text", text: completion.text });
      for (const call of calls) content.push({ type: "tool-call", toolCallId: call.toolCallId, toolName: call.name, input: JSON.stringify(call.args) });
      return { content, finishReason: calls.length > 0 ? "tool-calls" : "stop", usage: usageOf(completion), warnings: [] };
    },
    async doStream(options) {
      const { completion, calls } = await answer(options);
      const parts: LanguageModelV2StreamPart[] = [{ type: "stream-start", warnings: [] }];
      if (completion.text !== "" || calls.length === 0) {
        parts.push({ type: "text-start", id: "text" }, { type: "text-delta", id: "text", delta: completion.text }, { type: "text-end", id: "text" });
      }
      for (const call of calls) {
        const input = JSON.stringify(call.args);
        parts.push(
          { type: "tool-input-start", id: call.toolCallId, toolName: call.name },
          { type: "tool-input-delta", id: call.toolCallId, delta: input },
          { type: "tool-input-end", id: call.toolCallId },
          { type: "tool-call", toolCallId: call.toolCallId, toolName: call.name, input },
        );
      }
      parts.push({ type: "finish", finishReason: calls.length > 0 ? "tool-calls" : "stop", usage: usageOf(completion) });
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
  return prompt.map((message): ChatTurn => {
    if (message.role === "system") return { role: "system", text: message.content };
    if (message.role === "tool") {
      const toolResults = message.content.map((part) => ({ toolCallId: part.toolCallId, toolName: part.toolName, ...resultOf(part.output) }));
      return { role: "tool", text: toolResults.map((entry) => `${entry.toolName}: ${JSON.stringify(entry.result)}`).join("\n"), toolResults };
    }
    const text = message.content.map((part) => (part.type === "text" ? part.text : "")).join("");
    if (message.role === "user") return { role: "user", text };
    const toolCalls = message.content.flatMap((part) =>
      part.type === "tool-call" ? [{ toolCallId: part.toolCallId, name: part.toolName, args: argsOf(part.input) }] : [],
    );
    return { role: "assistant", text, ...(toolCalls.length > 0 ? { toolCalls } : {}) };
  });
}

function resultOf(output: LanguageModelV2ToolResultOutput): { result: unknown; isError: boolean } {
  switch (output.type) {
    case "text":
    case "json":
      return { result: output.value, isError: false };
    case "error-text":
    case "error-json":
      return { result: output.value, isError: true };
    case "content":
      return { result: output.value.map((part) => (part.type === "text" ? part.text : `[${part.mediaType}]`)).join("\n"), isError: false };
  }
}

/** A tool call's input as the prompt carries it back: an object, or (from some callers) its JSON text. */
function argsOf(input: unknown): Record<string, unknown> {
  if (typeof input === "string") {
    try {
      return argsOf(JSON.parse(input));
    } catch {
      return {};
    }
  }
  return typeof input === "object" && input !== null && !Array.isArray(input) ? (input as Record<string, unknown>) : {};
}

/** The JSON schema the caller asked the answer to follow, if any. */
export function responseSchema(options: LanguageModelV2CallOptions): Record<string, unknown> | undefined {
  return options.responseFormat?.type === "json" ? (options.responseFormat.schema as Record<string, unknown> | undefined) : undefined;
}

/** The function tools the caller offers, unless it forbids calling them. */
export function offeredTools(options: LanguageModelV2CallOptions): LanguageModelV2FunctionTool[] {
  if (options.toolChoice?.type === "none") return [];
  const tools = (options.tools ?? []).filter((tool): tool is LanguageModelV2FunctionTool => tool.type === "function");
  const chosen = options.toolChoice?.type === "tool" ? options.toolChoice.toolName : undefined;
  return chosen ? tools.filter((tool) => tool.name === chosen) : tools;
}

import { existsSync } from "node:fs";
import type { LanguageModelV2, LanguageModelV2FunctionTool } from "@ai-sdk/provider";
import type { ChatHistoryItem, Llama, LlamaContext, LlamaContextSequence, LlamaGrammar, LlamaModel } from "node-llama-cpp";
import { type ChatTurn, type ModelToolCall, offeredTools, responseSchema, textModel } from "./text-model.ts";

export interface LocalModelOptions {
  path: string;
  name: string;
  threads: number;
  contextSize: number;
  temperature: number;
  maxOutputTokens: number;
}

interface LoadedModel {
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  /** Kept for the process's life so the shared system-prompt prefix stays evaluated between requests. */
  sequence: LlamaContextSequence;
  grammars: Map<string, Promise<LlamaGrammar>>;
  /** One sequence, one request at a time: on a CPU the model is the bottleneck, and a queue keeps latency honest. */
  queue: Promise<unknown>;
}

const loaded = new Map<string, Promise<LoadedModel>>();

/**
 * A local GGUF model (SmolLM2-135M-Instruct by default) run on the CPU by node-llama-cpp's prebuilt
 * binary. Structured output is enforced with a grammar built from the JSON schema the caller asks
 * for, so even a very small model always answers in the agent's output shape.
 *
 * Tools: the model has no tool-calling format of its own, so when the request offers tools and the
 * conversation holds no tool result yet, the system prompt lists the tools and a grammar makes the
 * answer `{"tool": <one of their names>, "arguments": <that tool's input schema>}`, returned as a tool
 * call. Once a result is in, it answers (free text or the output schema) with the result shown as a
 * user turn.
 */
export function localLlamaModel(options: LocalModelOptions): LanguageModelV2 {
  return textModel("local", options.name, async (turns, callOptions) => {
    const runtime = await load(options);
    const tools = offeredTools(callOptions);
    const callsTool = tools.length > 0 && !turns.some((turn) => turn.role === "tool");
    const userText = turns.filter((turn) => turn.role === "user").map((turn) => turn.text).join("\n");
    const schema = callsTool ? toolCallSchema(tools, userText) : responseSchema(callOptions);
    const chat = history(callsTool ? withToolList(turns, tools) : turns);
    const run = async () => {
      const grammar = schema ? await grammarFor(runtime, schema) : undefined;
      const { sequence } = runtime;
      const before = sequence.tokenMeter.getState();
      const { LlamaChatSession } = await import("node-llama-cpp");
      const session = new LlamaChatSession({ contextSequence: sequence, autoDisposeSequence: false });
      try {
        const lastUser = chat.findLastIndex((item) => item.type === "user");
        session.setChatHistory(chat.slice(0, Math.max(0, lastUser)));
        const last = chat[lastUser];
        const text = await session.prompt(last?.type === "user" ? last.text : "", {
          ...(grammar ? { grammar } : {}),
          maxTokens: callOptions.maxOutputTokens ?? options.maxOutputTokens,
          temperature: callOptions.temperature ?? options.temperature,
          ...(callOptions.abortSignal ? { signal: callOptions.abortSignal } : {}),
        });
        const outputTokens = sequence.tokenMeter.diff(before).usedOutputTokens;
        // The whole prompt, as a hosted API counts it, not only the part the prefix cache had to evaluate.
        const inputTokens = Math.max(0, sequence.contextTokens.length - outputTokens);
        return callsTool ? { text: "", toolCalls: [toolCallOf(text)], inputTokens, outputTokens } : { text, inputTokens, outputTokens };
      } finally {
        session.dispose({ disposeSequence: false });
      }
    };
    const result = runtime.queue.then(run, run);
    runtime.queue = result.catch(() => undefined);
    return result;
  });
}

/**
 * The chat as the model reads it. A small model copies the shape of its own earlier turns, so a turn
 * that only called tools is left out and the tools' results are added to the user's message instead.
 */
function history(turns: ChatTurn[]): ChatHistoryItem[] {
  const items: ChatHistoryItem[] = [];
  for (const turn of turns) {
    if (turn.role === "system") items.push({ type: "system", text: turn.text });
    else if (turn.role === "user") items.push({ type: "user", text: turn.text });
    else if (turn.role === "assistant") {
      if (turn.text.trim() !== "") items.push({ type: "model", response: [turn.text] });
    } else {
      const results = (turn.toolResults ?? []).map((result) => `${result.toolName}${result.isError ? " failed" : " answered"}: ${JSON.stringify(result.result)}`);
      const note = `${results.join("\n")}\n\nWrite your answer to the message above now.`;
      const last = items.at(-1);
      if (last?.type === "user") last.text = `${last.text}\n\n${note}`;
      else items.push({ type: "user", text: note });
    }
  }
  return items;
}

/** The system prompt with the offered tools described, for the turn that must call one. */
function withToolList(turns: ChatTurn[], tools: LanguageModelV2FunctionTool[]): ChatTurn[] {
  const list = tools.map((tool) => {
    const { $schema: _schema, ...inputSchema } = tool.inputSchema as Record<string, unknown>;
    return `- ${tool.name}: ${tool.description ?? ""} Arguments: ${JSON.stringify(inputSchema)}`;
  });
  const note = ["You can call these tools:", ...list, 'Call one now, with the arguments taken from the message: answer with JSON {"tool": "<name>", "arguments": {...}}.'].join("\n");
  const system = turns.findIndex((turn) => turn.role === "system");
  if (system < 0) return [{ role: "system", text: note }, ...turns];
  return turns.map((turn, index) => (index === system ? { ...turn, text: `${turn.text.trimEnd()}\n\n${note}` } : turn));
}

/**
 * `{"tool": name, "arguments": …}`, one shape per tool, so each name comes with its own arguments.
 * `userText` (what the user wrote) supplies the values a `pattern` allows: see grammarSchema.
 */
export function toolCallSchema(tools: LanguageModelV2FunctionTool[], userText: string): Record<string, unknown> {
  const shapes = tools.map((tool) => ({
    type: "object",
    properties: { tool: { const: tool.name }, arguments: grammarSchema(tool.inputSchema as Record<string, unknown>, userText) },
    required: ["tool", "arguments"],
    additionalProperties: false,
  }));
  return shapes.length === 1 ? shapes[0]! : { oneOf: shapes };
}

/**
 * What the grammar can enforce of a JSON schema. Grammars cannot express a string's `pattern`, so a
 * patterned string is limited to the words of `userText` that match it (an order id the customer
 * gave), when there are any; other strings get a length bound, so a weak model cannot ramble inside a quote.
 */
function grammarSchema(schema: Record<string, unknown>, userText: string): Record<string, unknown> {
  const { $schema: _schema, pattern, description: _description, format: _format, ...rest } = schema;
  if (rest.type === "string" && rest.enum === undefined && rest.const === undefined) {
    const allowed = typeof pattern === "string" ? wordsMatching(pattern, userText) : [];
    if (allowed.length > 0) return { type: "string", enum: allowed };
    rest.maxLength ??= 64;
  }
  if (rest.properties && typeof rest.properties === "object") {
    rest.properties = Object.fromEntries(Object.entries(rest.properties as Record<string, Record<string, unknown>>).map(([name, property]) => [name, grammarSchema(property, userText)]));
  }
  if (rest.items && typeof rest.items === "object") rest.items = grammarSchema(rest.items as Record<string, unknown>, userText);
  return rest;
}

function wordsMatching(pattern: string, text: string): string[] {
  let whole: RegExp;
  try {
    whole = new RegExp(`^(?:${pattern.replace(/^\^/, "").replace(/\$$/, "")})$`);
  } catch {
    return [];
  }
  const words = text.split(/[\s,;:()"'“”]+/).map((word) => word.replace(/[.!?]+$/, ""));
  return [...new Set(words.filter((word) => whole.test(word)))];
}

function toolCallOf(text: string): ModelToolCall {
  try {
    const call = JSON.parse(text) as { tool: string; arguments: Record<string, unknown> };
    return { name: call.tool, args: call.arguments };
  } catch {
    // The grammar only allows the call's shape, so this is an answer cut short by the token limit.
    throw new Error(`The local model's tool call is not complete JSON (raise model.maxOutputTokens?): ${JSON.stringify(text.slice(0, 200))}`);
  }
}

function load(options: LocalModelOptions): Promise<LoadedModel> {
  const key = `${options.path}|${options.threads}|${options.contextSize}`;
  let model = loaded.get(key);
  if (!model) {
    model = loadModel(options);
    loaded.set(key, model);
    model.catch(() => loaded.delete(key));
  }
  return model;
}

async function loadModel(options: LocalModelOptions): Promise<LoadedModel> {
  if (!existsSync(options.path)) {
    throw new Error(`The local model file ${options.path} does not exist. Run the setup command (npm run setup), or set AGL_MODEL_PATH, or choose another model with AGL_MODEL.`);
  }
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  // Never build or download at run time: the prebuilt CPU binary ships in the npm package.
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: options.path });
  // More threads than cores makes llama.cpp's spinning workers fight each other (tens of times slower).
  const context = await model.createContext({ contextSize: options.contextSize, sequences: 1, threads: options.threads });
  return { llama, model, context, sequence: context.getSequence(), grammars: new Map(), queue: Promise.resolve() };
}

function grammarFor(runtime: LoadedModel, schema: Record<string, unknown>): Promise<LlamaGrammar> {
  const { $schema: _ignored, ...rest } = schema;
  const key = JSON.stringify(rest);
  let grammar = runtime.grammars.get(key);
  if (!grammar) {
    const compact = fixedLayoutGrammar(rest);
    grammar = compact
      ? runtime.llama.createGrammar({ grammar: compact })
      : runtime.llama.createGrammarForJsonSchema(rest as Parameters<Llama["createGrammarForJsonSchema"]>[0]);
    runtime.grammars.set(key, grammar);
  }
  return grammar;
}

/**
 * For a schema of fixed choices (objects whose properties are all required, each a string enum, a
 * constant, such an object or a oneOf of them: a classifier's answer, a tool call whose arguments come
 * from the message), a GBNF grammar that fixes the whole layout, so the model only spends tokens on
 * the choices: about a fifth faster than the general JSON-schema grammar, which also lets it emit
 * whitespace and newlines. Undefined for any other schema.
 */
export function fixedLayoutGrammar(schema: Record<string, unknown>): string | undefined {
  const rules: string[] = [];
  const root = layoutOf(schema, rules);
  return root === undefined ? undefined : [`root ::= ${root}`, ...rules].join("\n");
}

function layoutOf(schema: Record<string, unknown>, rules: string[]): string | undefined {
  if (typeof schema.const === "string") return gbnfLiteral(JSON.stringify(schema.const));
  if (schema.enum !== undefined) {
    const values = schema.enum;
    if (!Array.isArray(values) || values.length === 0 || !values.every((value) => typeof value === "string")) return undefined;
    const rule = `v${rules.length}`;
    rules.push(`${rule} ::= ${values.map((value) => gbnfLiteral(JSON.stringify(value))).join(" | ")}`);
    return rule;
  }
  if (Array.isArray(schema.oneOf)) {
    const alternatives = (schema.oneOf as Record<string, unknown>[]).map((alternative) => layoutOf(alternative, rules));
    return alternatives.length > 0 && alternatives.every((alternative) => alternative !== undefined) ? `( ${alternatives.join(" | ")} )` : undefined;
  }
  const properties = schema.properties as Record<string, Record<string, unknown>> | undefined;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  if (schema.type !== "object" || !properties) return undefined;
  const entries = Object.entries(properties);
  if (entries.length === 0) return undefined;
  const parts: string[] = [];
  for (const [index, [name, property]] of entries.entries()) {
    const value = required.has(name) ? layoutOf(property, rules) : undefined;
    if (value === undefined) return undefined;
    parts.push(gbnfLiteral(`${index === 0 ? "{" : ","}${JSON.stringify(name)}:`), value);
  }
  return `${parts.join(" ")} "}"`;
}

function gbnfLiteral(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

import { existsSync } from "node:fs";
import type { LanguageModelV2 } from "@ai-sdk/provider";
import type { ChatHistoryItem, Llama, LlamaContext, LlamaContextSequence, LlamaGrammar, LlamaModel } from "node-llama-cpp";
import { type ChatTurn, responseSchema, textModel } from "./text-model.ts";

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
 */
export function localLlamaModel(options: LocalModelOptions): LanguageModelV2 {
  return textModel("local", options.name, async (turns, callOptions) => {
    const runtime = await load(options);
    const schema = responseSchema(callOptions);
    const run = async () => {
      const grammar = schema ? await grammarFor(runtime, schema) : undefined;
      const { sequence } = runtime;
      const before = sequence.tokenMeter.getState();
      const { LlamaChatSession } = await import("node-llama-cpp");
      const session = new LlamaChatSession({ contextSequence: sequence, autoDisposeSequence: false });
      try {
        const lastUser = turns.findLastIndex((turn) => turn.role === "user");
        session.setChatHistory(history(turns.slice(0, lastUser)));
        const text = await session.prompt(turns[lastUser]?.text ?? "", {
          ...(grammar ? { grammar } : {}),
          maxTokens: callOptions.maxOutputTokens ?? options.maxOutputTokens,
          temperature: callOptions.temperature ?? options.temperature,
          ...(callOptions.abortSignal ? { signal: callOptions.abortSignal } : {}),
        });
        const outputTokens = sequence.tokenMeter.diff(before).usedOutputTokens;
        // The whole prompt, as a hosted API counts it, not only the part the prefix cache had to evaluate.
        return { text, inputTokens: Math.max(0, sequence.contextTokens.length - outputTokens), outputTokens };
      } finally {
        session.dispose({ disposeSequence: false });
      }
    };
    const result = runtime.queue.then(run, run);
    runtime.queue = result.catch(() => undefined);
    return result;
  });
}

function history(turns: ChatTurn[]): ChatHistoryItem[] {
  return turns.map((turn): ChatHistoryItem => {
    if (turn.role === "system") return { type: "system", text: turn.text };
    if (turn.role === "user") return { type: "user", text: turn.text };
    return { type: "model", response: [turn.text] };
  });
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
    const compact = compactEnumObjectGrammar(rest);
    grammar = compact
      ? runtime.llama.createGrammar({ grammar: compact })
      : runtime.llama.createGrammarForJsonSchema(rest as Parameters<Llama["createGrammarForJsonSchema"]>[0]);
    runtime.grammars.set(key, grammar);
  }
  return grammar;
}

/**
 * For an object whose properties are all required string enums (a classifier's answer), a GBNF
 * grammar that fixes the whole layout, so the model only spends tokens on the choices: about a fifth
 * faster than the general JSON-schema grammar, which also lets it emit whitespace and newlines.
 */
export function compactEnumObjectGrammar(schema: Record<string, unknown>): string | undefined {
  const properties = schema.properties as Record<string, { enum?: unknown[] }> | undefined;
  const required = new Set((schema.required as string[] | undefined) ?? []);
  if (schema.type !== "object" || !properties) return undefined;
  const entries = Object.entries(properties);
  if (entries.length === 0) return undefined;
  const rules: string[] = [];
  const parts: string[] = [];
  for (const [index, [name, property]] of entries.entries()) {
    const values = property.enum;
    if (!required.has(name) || !Array.isArray(values) || values.length === 0 || !values.every((value) => typeof value === "string")) return undefined;
    parts.push(gbnfLiteral(`${index === 0 ? "{" : ","}${JSON.stringify(name)}:`), `v${index}`);
    rules.push(`v${index} ::= ${values.map((value) => gbnfLiteral(JSON.stringify(value))).join(" | ")}`);
  }
  return [`root ::= ${parts.join(" ")} "}"`, ...rules].join("\n");
}

function gbnfLiteral(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

import type { LanguageModelV2CallOptions, LanguageModelV2FunctionTool, LanguageModelV2Prompt, LanguageModelV2StreamPart } from "@ai-sdk/provider";
import { Agent } from "@mastra/core/agent";
import { createTool } from "@mastra/core/tools";
import { describe, expect, test } from "vitest";
import { z } from "zod";
import { chatTurns, type ChatTurn, offeredTools, textModel } from "../../agents/models/text-model.ts";
import { defineAgent } from "../../agents/define.ts";
import { createAgentRunner } from "../../agents/runner.ts";

const lookupTool: LanguageModelV2FunctionTool = { type: "function", name: "lookupOrder", description: "Looks an order up", inputSchema: { type: "object", properties: { orderId: { type: "string" } } } };

function callOptions(prompt: LanguageModelV2Prompt, extra: Partial<LanguageModelV2CallOptions> = {}): LanguageModelV2CallOptions {
  return { prompt, ...extra };
}

const userAsks: LanguageModelV2Prompt = [
  { role: "system", content: "You help." },
  { role: "user", content: [{ type: "text", text: "Where is A-1042?" }] },
];

/** A FAKE model that calls lookupOrder until a result is in, then answers with the status it read. */
function scriptedModel(seen: ChatTurn[][] = []) {
  return textModel("fake", "scripted-tools", async (turns) => {
    seen.push(turns);
    const result = turns.flatMap((turn) => turn.toolResults ?? [])[0];
    if (!result) return { text: "", toolCalls: [{ name: "lookupOrder", args: { orderId: "A-1042" } }], inputTokens: 1, outputTokens: 1 };
    return { text: `It is ${(result.result as { status: string }).status}.`, inputTokens: 1, outputTokens: 1 };
  });
}

describe("textModel carries tool calls out and tool results back (AI SDK v2)", () => {
  test("doGenerate answers tool calls as tool-call content with JSON input and finish reason tool-calls", async () => {
    const model = scriptedModel();
    const result = await model.doGenerate(callOptions(userAsks, { tools: [lookupTool] }));
    expect(result.finishReason).toBe("tool-calls");
    expect(result.content).toEqual([{ type: "tool-call", toolCallId: "call-2-0", toolName: "lookupOrder", input: '{"orderId":"A-1042"}' }]);
    const text = await textModel("fake", "plain", async () => ({ text: "hello", inputTokens: 1, outputTokens: 1 })).doGenerate(callOptions(userAsks));
    expect(text).toMatchObject({ finishReason: "stop", content: [{ type: "text", text: "hello" }] });
  });

  test("doStream streams the call's input and then the call itself", async () => {
    const { stream } = await scriptedModel().doStream(callOptions(userAsks, { tools: [lookupTool] }));
    const parts: LanguageModelV2StreamPart[] = [];
    for await (const part of stream as unknown as AsyncIterable<LanguageModelV2StreamPart>) parts.push(part);
    expect(parts.map((part) => part.type)).toEqual(["stream-start", "tool-input-start", "tool-input-delta", "tool-input-end", "tool-call", "finish"]);
    expect(parts[4]).toEqual({ type: "tool-call", toolCallId: "call-2-0", toolName: "lookupOrder", input: '{"orderId":"A-1042"}' });
    expect(parts[5]).toMatchObject({ finishReason: "tool-calls" });
  });

  test("a conversation's tool calls and results become chat turns, errors marked as such", () => {
    const turns = chatTurns([
      ...userAsks,
      {
        role: "assistant",
        content: [
          { type: "tool-call", toolCallId: "c1", toolName: "lookupOrder", input: { orderId: "A-1042" } },
          { type: "tool-call", toolCallId: "c2", toolName: "lookupOrder", input: '{"orderId":"B-7"}' },
        ],
      },
      {
        role: "tool",
        content: [
          { type: "tool-result", toolCallId: "c1", toolName: "lookupOrder", output: { type: "json", value: { status: "shipped" } } },
          { type: "tool-result", toolCallId: "c2", toolName: "lookupOrder", output: { type: "error-text", value: "no such order" } },
        ],
      },
    ]);
    expect(turns[2]).toEqual({
      role: "assistant",
      text: "",
      toolCalls: [
        { toolCallId: "c1", name: "lookupOrder", args: { orderId: "A-1042" } },
        { toolCallId: "c2", name: "lookupOrder", args: { orderId: "B-7" } },
      ],
    });
    expect(turns[3]).toEqual({
      role: "tool",
      text: 'lookupOrder: {"status":"shipped"}\nlookupOrder: "no such order"',
      toolResults: [
        { toolCallId: "c1", toolName: "lookupOrder", result: { status: "shipped" }, isError: false },
        { toolCallId: "c2", toolName: "lookupOrder", result: "no such order", isError: true },
      ],
    });
  });

  test("offeredTools: function tools, none when the call forbids them, only the one it names", () => {
    const other = { ...lookupTool, name: "cancelOrder" };
    expect(offeredTools(callOptions(userAsks, { tools: [lookupTool, other] })).map((tool) => tool.name)).toEqual(["lookupOrder", "cancelOrder"]);
    expect(offeredTools(callOptions(userAsks, { tools: [lookupTool, other], toolChoice: { type: "none" } }))).toEqual([]);
    expect(offeredTools(callOptions(userAsks, { tools: [lookupTool, other], toolChoice: { type: "tool", toolName: "cancelOrder" } })).map((tool) => tool.name)).toEqual(["cancelOrder"]);
    expect(offeredTools(callOptions(userAsks))).toEqual([]);
  });
});

describe("through Mastra: a model agent's tool runs, and the runner records the call with its result", () => {
  const lookupOrder = createTool({
    id: "lookupOrder",
    description: "Looks an order up",
    inputSchema: z.object({ orderId: z.string() }),
    execute: async ({ orderId }) => ({ orderId, status: "shipped" }),
  });

  test("generate: the call, its arguments and result are recorded; the answer read the result", async () => {
    const seen: ChatTurn[][] = [];
    const agent = defineAgent({ id: "tool-user", input: z.object({ question: z.string() }), output: "text", tools: { lookupOrder }, prompt: { instructions: "Look it up." } });
    const run = await createAgentRunner(agent, scriptedModel(seen))({ question: "Where is A-1042?" }, agent.prompt.seed);
    expect(run).toMatchObject({ status: "succeeded", output: { text: "It is shipped." } });
    expect(run.toolCalls).toEqual([{ name: "lookupOrder", args: { orderId: "A-1042" }, result: { orderId: "A-1042", status: "shipped" } }]);
    // The second model call saw its own call and the tool's result.
    expect(seen).toHaveLength(2);
    expect(seen[1]!.map((turn) => turn.role)).toEqual(["system", "user", "assistant", "tool"]);
    expect(seen[1]![3]!.toolResults).toEqual([{ toolCallId: "call-2-0", toolName: "lookupOrder", result: { orderId: "A-1042", status: "shipped" }, isError: false }]);
  });

  test("stream: the same tool round trip through doStream", async () => {
    const agent = new Agent({ id: "streamer", name: "streamer", instructions: "Look it up.", model: scriptedModel(), tools: { lookupOrder } });
    const output = await agent.stream("Where is A-1042?", { maxSteps: 3 });
    expect(await output.text).toBe("It is shipped.");
    expect((await output.toolResults).map((result) => result.payload.result)).toEqual([{ orderId: "A-1042", status: "shipped" }]);
  });
});

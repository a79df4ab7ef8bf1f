import { existsSync } from "node:fs";
import type { LanguageModelV2FunctionTool } from "@ai-sdk/provider";
import { describe, expect, test } from "vitest";
import { fundingExtractor, supportReply } from "../../agents/examples.ts";
import { ROUNDS } from "../../agents/funding-extractor/index.ts";
import { createLanguageModel, LOCAL_MODEL_NAME, localModelPath } from "../../agents/models/index.ts";
import { fixedLayoutGrammar, toolCallSchema } from "../../agents/models/local-llama.ts";
import { createAgentRunner } from "../../agents/runner.ts";
import { ORDERS } from "../../agents/support-reply/orders.ts";
import { loadConfig } from "../../config/load.ts";
import { INSTALL_ROOT } from "../../config/paths.ts";

const config = loadConfig({ env: {}, cwd: INSTALL_ROOT });

describe("the real local model (SmolLM2 on the CPU) calls a tool and extracts fields", () => {
  test("support-reply: it looks each order up with the customer's id, then answers in free text", { timeout: 180_000 }, async () => {
    const path = localModelPath(config);
    if (!existsSync(path)) throw new Error(`The local model file ${path} is missing: run \`npm run setup\` in ${INSTALL_ROOT} to install it.`);
    const run = createAgentRunner(supportReply, createLanguageModel(config));
    for (const input of [
      { customer: "Dana Whitfield", orderId: "A-1029", message: "Hi, where is my desk lamp?" },
      { customer: "Omar Haddad", orderId: "A-1005", message: "Has my order A-1005 shipped yet?" },
    ]) {
      const result = await run(input, supportReply.prompt.seed);
      expect(result.error).toBeNull();
      expect(result.toolCalls).toEqual([{ name: "lookupOrder", args: { orderId: input.orderId }, result: ORDERS.get(input.orderId) }]);
      expect(typeof result.output?.text).toBe("string");
      expect(String(result.output?.text).trim()).not.toBe("");
      expect(result.model).toBe(`local/${LOCAL_MODEL_NAME}`);
    }
  });

  test("funding-extractor: its answer follows the output schema", async () => {
    const run = createAgentRunner(fundingExtractor, createLanguageModel(config));
    const result = await run({ text: "Payzo, a Lisbon-based payments startup, has closed a $3.5 million seed round led by Oakline Capital." }, fundingExtractor.prompt.seed);
    expect(result.error).toBeNull();
    expect(Object.keys(result.output!).sort()).toEqual(["amountUsd", "company", "investors", "round"]);
    expect(ROUNDS).toContain(result.output!.round);
    expect(typeof result.output!.amountUsd).toBe("number");
  });
});

describe("the tool-call grammar", () => {
  const lookupOrder: LanguageModelV2FunctionTool = {
    type: "function",
    name: "lookupOrder",
    inputSchema: { type: "object", properties: { orderId: { type: "string", pattern: "^[A-Z]-\\d{4}$" } }, required: ["orderId"], additionalProperties: false },
  };
  const cancelOrder: LanguageModelV2FunctionTool = {
    type: "function",
    name: "cancelOrder",
    inputSchema: { type: "object", properties: { orderId: { type: "string" }, reason: { type: "string", maxLength: 20 } }, required: ["orderId"] },
  };

  test("a patterned argument may only be a word of the message that matches the pattern: the layout is then fixed", () => {
    const schema = toolCallSchema([lookupOrder], "Customer: Ann\nOrder: A-1042\n\nOr was it B-7731? Not 1042.");
    expect(schema).toEqual({
      type: "object",
      properties: { tool: { const: "lookupOrder" }, arguments: { type: "object", properties: { orderId: { type: "string", enum: ["A-1042", "B-7731"] } }, required: ["orderId"], additionalProperties: false } },
      required: ["tool", "arguments"],
      additionalProperties: false,
    });
    expect(fixedLayoutGrammar(schema)).toBe(['root ::= "{\\"tool\\":" "\\"lookupOrder\\"" ",\\"arguments\\":" "{\\"orderId\\":" v0 "}" "}"', 'v0 ::= "\\"A-1042\\"" | "\\"B-7731\\""'].join("\n"));
  });

  test("several tools: one shape per tool; free strings are bounded; no matching word leaves the pattern to the tool", () => {
    const schema = toolCallSchema([lookupOrder, cancelOrder], "cancel my order please") as { oneOf: { properties: { tool: unknown; arguments: { properties: Record<string, unknown> } } }[] };
    expect(schema.oneOf.map((shape) => shape.properties.tool)).toEqual([{ const: "lookupOrder" }, { const: "cancelOrder" }]);
    expect(schema.oneOf[0]!.properties.arguments.properties).toEqual({ orderId: { type: "string", maxLength: 64 } });
    expect(schema.oneOf[1]!.properties.arguments.properties).toEqual({ orderId: { type: "string", maxLength: 64 }, reason: { type: "string", maxLength: 20 } });
    // Free strings cannot be laid out in advance: the general JSON-schema grammar takes over.
    expect(fixedLayoutGrammar(schema)).toBeUndefined();
  });
});

import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtobufExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import type { Span } from "@opentelemetry/api";
import { describe, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { renderPrompt } from "../../agents/prompt-template.ts";
import { agentSpanRolloutKey } from "../../server/otlp/ingest.ts";
import { ANSWER, exportSpans, POST, recordMastraRun, recordSpans } from "../support/otlp.ts";
import { serveOtlp } from "../support/otlp-server.ts";
import { BACKENDS } from "../support/stores.ts";

const INSTRUCTIONS = renderPrompt(postAnalyzer.prompt.seed);

describe.each(BACKENDS)("OpenTelemetry SDK exporters -> POST /v1/traces (%s)", (backend) => {
  const server = serveOtlp(backend);
  const endpoint = () => `${server.url}/v1/traces`;

  test("protobuf: a Mastra agent run becomes a rollout with input, output, instructions, tokens, model, latency and prompt version; re-sending stores nothing", async () => {
    let agentSpan!: Span;
    const spans = recordSpans({ "service.name": "shop", "agl.prompt.version": 2 }, (tracer) => {
      agentSpan = recordMastraRun(tracer, { instructions: INSTRUCTIONS, latencyMs: 120, tokens: { input: 63, output: 6 } });
    });
    const exporter = new ProtobufExporter({ url: endpoint() });
    expect(await exportSpans(exporter, spans)).toEqual({ code: 0 });

    const { traceId, spanId } = agentSpan.spanContext();
    const rolloutId = agentSpanRolloutKey(traceId, spanId);
    expect(await server.store.rollouts.get(rolloutId)).toMatchObject({
      agent: postAnalyzer.id,
      source: "otlp",
      cycleId: null,
      input: { content: POST },
      output: ANSWER,
      status: "succeeded",
      error: null,
      latencyMs: 120,
      model: "fake/fake-keyword",
      inputTokens: 63,
      outputTokens: 6,
      resourceName: postAnalyzer.prompt.resource,
      resourceVersion: 2,
      traceId,
      instructions: INSTRUCTIONS,
    });
    const linked = await server.store.traces.spansOfRollout(rolloutId);
    expect(linked.map((span) => span.name)).toEqual(["invoke_agent post-analyzer", "model_generation fake-keyword", "agent_step post-analyzer", "chat fake-keyword"]);
    expect(linked[0]!.attributes["gen_ai.system_instructions"]).toBe(INSTRUCTIONS);
    expect(linked[0]!.resource["service.name"]).toBe("shop");

    const before = await server.store.traces.totals();
    expect(await exportSpans(exporter, spans)).toEqual({ code: 0 });
    expect(await server.store.traces.totals()).toEqual(before);
    await exporter.shutdown();
  });

  test("JSON, one span per request with the children first: the rollout still gets its tokens and every span is linked to it", async () => {
    let agentSpan!: Span;
    const spans = recordSpans({ "service.name": "shop" }, (tracer) => {
      agentSpan = recordMastraRun(tracer, {
        latencyMs: 80,
        tokens: { input: 40, output: 5 },
        metadata: { "mastra.metadata.promptVersion": 3, "mastra.metadata.promptResource": postAnalyzer.prompt.resource },
      });
    });
    const exporter = new JsonExporter({ url: endpoint() });
    for (const span of spans) expect(await exportSpans(exporter, [span])).toEqual({ code: 0 });

    const { traceId, spanId } = agentSpan.spanContext();
    const rolloutId = agentSpanRolloutKey(traceId, spanId);
    expect(await server.store.rollouts.get(rolloutId)).toMatchObject({ input: { content: POST }, output: ANSWER, inputTokens: 40, outputTokens: 5, latencyMs: 80, resourceVersion: 3 });
    expect((await server.store.traces.spansOfTrace(traceId)).map((span) => span.rolloutId)).toEqual([rolloutId, rolloutId, rolloutId, rolloutId]);
    await exporter.shutdown();
  });

  test("an agent span whose output is the bare structured object, not Mastra's {text, object}, is read the same way", async () => {
    let agentSpan!: Span;
    const spans = recordSpans({ "service.name": "shop" }, (tracer) => {
      agentSpan = recordMastraRun(tracer, { output: JSON.stringify(ANSWER) });
    });
    const exporter = new ProtobufExporter({ url: endpoint() });
    expect(await exportSpans(exporter, spans)).toEqual({ code: 0 });
    const { traceId, spanId } = agentSpan.spanContext();
    expect(await server.store.rollouts.get(agentSpanRolloutKey(traceId, spanId))).toMatchObject({ agent: postAnalyzer.id, output: ANSWER, status: "succeeded", error: null });
    await exporter.shutdown();
  });

  test("the older agent.<id> shape and an agent nobody registered: still a rollout, named after the agent", async () => {
    let agentSpan!: Span;
    const spans = recordSpans({ "service.name": "support" }, (tracer) => {
      agentSpan = recordMastraRun(tracer, {
        agent: "support-bot",
        userMessage: "Where is my order 1234?",
        answer: { intent: "order_status" },
        latencyMs: 50,
        tokens: { input: 12, output: 3 },
        metadata: { promptVersion: 7, promptResource: "support-prompt" },
        legacy: true,
      });
    });
    const exporter = new ProtobufExporter({ url: endpoint() });
    expect(await exportSpans(exporter, spans)).toEqual({ code: 0 });
    const { traceId, spanId } = agentSpan.spanContext();
    expect(await server.store.rollouts.get(agentSpanRolloutKey(traceId, spanId))).toMatchObject({
      agent: "support-bot",
      input: { text: "Where is my order 1234?" },
      output: { intent: "order_status" },
      status: "succeeded",
      model: "fake/fake-keyword",
      inputTokens: 12,
      outputTokens: 3,
      latencyMs: 50,
      resourceName: "support-prompt",
      resourceVersion: 7,
    });
    await exporter.shutdown();
  });
});

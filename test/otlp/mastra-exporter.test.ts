import { Agent } from "@mastra/core/agent";
import { Mastra } from "@mastra/core/mastra";
import { Observability } from "@mastra/observability";
import { OtelExporter } from "@mastra/otel-exporter";
import { expect, test } from "vitest";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { renderPrompt } from "../../agents/prompt-template.ts";
import { serveOtlp } from "../support/otlp-server.ts";

// Mastra reports usage to a remote analytics host unless told not to.
process.env.MASTRA_TELEMETRY_DISABLED = "1";

const INSTRUCTIONS = renderPrompt(postAnalyzer.prompt.seed);
const POST = "Our roadmap review moved the search feature ahead of the billing rewrite.";

const server = serveOtlp("pglite");

test.each(["http/protobuf", "http/json"] as const)("a Mastra agent with Mastra's own OTLP exporter (%s) pointing at the server becomes a rollout", async (protocol) => {
  const exporter = new OtelExporter({ provider: { custom: { endpoint: server.url, protocol } }, signals: { logs: false }, resourceAttributes: { "agl.prompt.resource": postAnalyzer.prompt.resource } });
  const agent = new Agent({ id: postAnalyzer.id, name: postAnalyzer.id, instructions: INSTRUCTIONS, model: fakeKeywordModel() });
  const mastra = new Mastra({ agents: { postAnalyzer: agent }, observability: new Observability({ configs: { otel: { serviceName: "shop", exporters: [exporter] } } }), logger: false });
  try {
    const result = await mastra.getAgent("postAnalyzer").generate(postAnalyzer.message({ content: POST }), {
      structuredOutput: { schema: postAnalyzer.outputSchema! },
      tracingOptions: { metadata: { promptVersion: 4 } },
    });
    await exporter.flush();

    const traceId = result.traceId!;
    const spans = await server.store.traces.spansOfTrace(traceId);
    const agentSpan = spans.find((span) => span.name === `invoke_agent ${postAnalyzer.id}`)!;
    expect(agentSpan.attributes["gen_ai.system_instructions"]).toBe(INSTRUCTIONS);
    expect(spans.every((span) => span.rolloutId === agentSpan.rolloutId)).toBe(true);
    const rollout = await server.store.rollouts.get(agentSpan.rolloutId!);
    expect(rollout).toMatchObject({
      agent: postAnalyzer.id,
      source: "otlp",
      cycleId: null,
      input: { content: POST },
      output: result.object,
      status: "succeeded",
      model: "fake/fake-keyword",
      inputTokens: result.usage.inputTokens,
      outputTokens: result.usage.outputTokens,
      resourceName: postAnalyzer.prompt.resource,
      resourceVersion: 4,
      traceId,
      instructions: INSTRUCTIONS,
    });
    expect(rollout.latencyMs).toBe(agentSpan.end.getTime() - agentSpan.start.getTime());
  } finally {
    await mastra.shutdown();
  }
});

import { context, type Span, SpanKind, type Tracer, trace } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";

export type SpanAttributes = Record<string, string | number | boolean>;

/** Spans made with the OpenTelemetry SDK, ended and ready for any exporter. */
export function recordSpans(resource: SpanAttributes, build: (tracer: Tracer) => void): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes(resource), spanProcessors: [new SimpleSpanProcessor(memory)] });
  build(provider.getTracer("agl-test"));
  return memory.getFinishedSpans();
}

/** Exports through a real OTLP exporter and resolves with its verdict (0 = success). */
export function exportSpans(exporter: SpanExporter, spans: ReadableSpan[]): Promise<{ code: number; error?: Error | undefined }> {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

export const POST = "We closed our seed round and hired two engineers for the startup.";
export const ANSWER = { category: "startups", sentiment: "positive" };

export interface MastraRunOptions {
  agent: string;
  userMessage: string;
  answer: Record<string, unknown>;
  instructions: string;
  startMs: number;
  latencyMs: number;
  tokens: { input: number; output: number };
  /** Attributes the app adds to every span of the run, e.g. `mastra.metadata.promptVersion`. */
  metadata?: SpanAttributes;
  /** `mastra.agent_run.output` as sent; by default Mastra's `{text, object, files}` around `answer`. */
  output?: string;
  /** The older shape (@mastra/otel-exporter 0.x): `agent.<id>` with `input`/`output` and a `chat <model>` child with pre-1.37 GenAI names. */
  legacy?: boolean;
}

/**
 * The spans @mastra/otel-exporter 1.4 emits for one agent run (agent → generation → step → chat), or the
 * older shape; by default the post analyzer classifying POST as ANSWER a second ago.
 */
export function recordMastraRun(tracer: Tracer, options: Partial<MastraRunOptions> = {}): Span {
  const run: MastraRunOptions = {
    agent: postAnalyzer.id,
    userMessage: postAnalyzer.message({ content: POST }),
    answer: ANSWER,
    instructions: "Classify the post.",
    startMs: Date.now() - 1000,
    latencyMs: 30,
    tokens: { input: 20, output: 4 },
    ...options,
  };
  const at = (offsetMs: number) => new Date(run.startMs + offsetMs);
  const metadata = run.metadata ?? {};
  const childOf = (parent: Span) => trace.setSpan(context.active(), parent);
  if (run.legacy) {
    const agentSpan = tracer.startSpan(`agent.${run.agent}`, {
      startTime: at(0),
      attributes: {
        "gen_ai.operation.name": "agent.run",
        "mastra.span.type": "agent_run",
        "agent.id": run.agent,
        input: JSON.stringify([{ role: "user", content: run.userMessage }]),
        output: JSON.stringify({ text: JSON.stringify(run.answer), object: run.answer }),
        ...metadata,
      },
    });
    const chat = tracer.startSpan(
      "chat fake-keyword",
      {
        startTime: at(1),
        kind: SpanKind.CLIENT,
        attributes: {
          "gen_ai.operation.name": "chat",
          "gen_ai.request.model": "fake-keyword",
          "gen_ai.system": "fake",
          "gen_ai.prompt": JSON.stringify({ messages: [{ role: "system", content: run.instructions }, { role: "user", content: run.userMessage }] }),
          "gen_ai.usage.prompt_tokens": run.tokens.input,
          "gen_ai.usage.completion_tokens": run.tokens.output,
          ...metadata,
        },
      },
      childOf(agentSpan),
    );
    chat.end(at(run.latencyMs - 1));
    agentSpan.end(at(run.latencyMs));
    return agentSpan;
  }
  const agentSpan = tracer.startSpan(`invoke_agent ${run.agent}`, {
    startTime: at(0),
    attributes: {
      "gen_ai.operation.name": "invoke_agent",
      "mastra.span.type": "agent_run",
      "gen_ai.agent.id": run.agent,
      "gen_ai.agent.name": run.agent,
      "gen_ai.system_instructions": run.instructions,
      "mastra.agent_run.input": run.userMessage,
      "mastra.agent_run.output": run.output ?? JSON.stringify({ text: JSON.stringify(run.answer), object: run.answer, files: [] }),
      ...metadata,
    },
  });
  const generation = tracer.startSpan(
    "model_generation fake-keyword",
    { startTime: at(1), attributes: { "gen_ai.operation.name": "model_generation", "mastra.span.type": "model_generation", ...metadata } },
    childOf(agentSpan),
  );
  const step = tracer.startSpan("agent_step post-analyzer", { startTime: at(2), attributes: { "gen_ai.operation.name": "agent_step", "mastra.span.type": "model_step", ...metadata } }, childOf(generation));
  const chat = tracer.startSpan(
    "chat fake-keyword",
    {
      startTime: at(3),
      kind: SpanKind.CLIENT,
      attributes: {
        "gen_ai.operation.name": "chat",
        "mastra.span.type": "model_inference",
        "gen_ai.request.model": "fake-keyword",
        "gen_ai.provider.name": "fake",
        "gen_ai.usage.input_tokens": run.tokens.input,
        "gen_ai.usage.output_tokens": run.tokens.output,
        "gen_ai.output.messages": JSON.stringify([{ role: "assistant", parts: [{ type: "text", content: JSON.stringify(run.answer) }] }]),
        ...metadata,
      },
    },
    childOf(step),
  );
  chat.end(at(run.latencyMs - 3));
  step.end(at(run.latencyMs - 2));
  generation.end(at(run.latencyMs - 1));
  agentSpan.end(at(run.latencyMs));
  return agentSpan;
}

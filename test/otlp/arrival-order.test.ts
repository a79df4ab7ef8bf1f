import { type Context, context, type Span, type Tracer, trace } from "@opentelemetry/api";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtobufExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { describe, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import type { Store } from "../../store/index.ts";
import { agentSpanRolloutKey } from "../../server/otlp/ingest.ts";
import { ANSWER, exportSpans, POST, recordMastraRun, recordSpans, type SpanAttributes } from "../support/otlp.ts";
import { serveOtlp } from "../support/otlp-server.ts";
import { BACKENDS } from "../support/stores.ts";

const lightning = (rolloutId: string): SpanAttributes => ({ "agentlightning.rollout_id": rolloutId, "agentlightning.attempt_id": "at-1" });

/** Deterministic shuffles and batch sizes (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let value = Math.imul(state ^ (state >>> 15), 1 | state);
    value = (value + Math.imul(value ^ (value >>> 7), 61 | value)) ^ value;
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

const isAgentSpan = (span: ReadableSpan) => span.name.startsWith("invoke_agent ") || span.name.startsWith("agent.");

/**
 * Late-parent runs (whose agent spans are held back), other traffic, an Agent Lightning rollout with a
 * reward, the older span shape: recorded once, so every ordering below sends exactly the same spans.
 */
function corpus(): { late: ReadableSpan[]; traffic: ReadableSpan[] } {
  const runs = (count: number, tag: string, extra?: (tracer: Tracer) => void) =>
    recordSpans({ "service.name": "shop" }, (tracer) => {
      for (let run = 0; run < count; run++) {
        recordMastraRun(tracer, {
          userMessage: postAnalyzer.message({ content: `${tag} post ${run}` }),
          tokens: { input: 10 + run, output: 2 + run },
          metadata: { "mastra.metadata.promptVersion": 1 + (run % 3) },
        });
      }
      extra?.(tracer);
    });
  const late = runs(3, "late");
  const traffic = [
    ...runs(6, "traffic", (tracer) => recordMastraRun(tracer, { agent: "support-bot", userMessage: "Where is my order?", answer: { intent: "order_status" }, legacy: true })),
    ...recordSpans({ "service.name": "trainer", ...lightning("ro-order") }, (tracer) => {
      recordMastraRun(tracer, { tokens: { input: 30, output: 3 } });
      tracer.startSpan("agentlightning.annotation", { attributes: { "agentlightning.reward.0.name": "primary", "agentlightning.reward.0.value": 0.5 } }).end();
    }),
    // Model calls alone: which one gives the input, the output and the order of model names must not follow arrival.
    ...recordSpans({ "service.name": "trainer", ...lightning("ro-calls-only") }, (tracer) => {
      const startMs = Date.now() - 5_000;
      for (const [index, model] of ["model-a", "model-b", "model-c"].entries()) {
        tracer
          .startSpan(`chat ${model}`, {
            startTime: new Date(startMs + index * 100),
            attributes: {
              "gen_ai.operation.name": "chat",
              "gen_ai.request.model": model,
              "gen_ai.input.messages": JSON.stringify([{ role: "user", content: `question ${index}` }]),
              "gen_ai.output.messages": JSON.stringify([{ role: "assistant", content: `answer ${index}` }]),
              "gen_ai.usage.input_tokens": 5,
            },
          })
          .end(new Date(startMs + index * 100 + 50));
      }
    }),
  ];
  return { late, traffic };
}

/** Every OTLP rollout with its rewards, and which rollout each span joined: what must not depend on arrival order. */
async function snapshot(store: Store) {
  const rows = await store.db.selectFrom("rollouts").select("id").where("source", "=", "otlp").orderBy("id").execute();
  const rollouts = (await store.rollouts.getMany(rows.map((row) => row.id))).map(({ createdAt, rewards, ...rollout }) => ({
    ...rollout,
    rewards: rewards.map(({ createdAt: rewardedAt, ...reward }) => reward),
  }));
  const spans = await store.db.selectFrom("spans").select(["trace_id", "span_id", "rollout_id"]).orderBy("trace_id").orderBy("span_id").execute();
  return { rollouts, spans };
}

describe.each(BACKENDS)("a rollout is the same whatever order and batching its spans arrive in (%s)", (backend) => {
  const reference = serveOtlp(backend);
  const oneByOne = serveOtlp(backend);
  const shuffled = serveOtlp(backend);
  const lateParents = serveOtlp(backend);
  const { late, traffic } = corpus();
  const all = [...late, ...traffic];

  test("all at once, one span per request through the SDK's SimpleSpanProcessor, shuffled concurrent batches with repeats, and parents after other traffic store the same", async () => {
    const whole = new ProtobufExporter({ url: `${reference.url}/v1/traces` });
    expect(await exportSpans(whole, all)).toEqual({ code: 0 });
    await whole.shutdown();
    const expected = await snapshot(reference.store);
    expect(expected.rollouts).toHaveLength(12);
    expect(expected.spans.every((span) => span.rollout_id !== null)).toBe(true);
    const runsOfPosts = expected.rollouts.filter((rollout) => rollout.agent === postAnalyzer.id && rollout.input.content !== POST);
    expect(runsOfPosts).toHaveLength(9);
    for (const rollout of runsOfPosts) expect(rollout).toMatchObject({ status: "succeeded", output: ANSWER, model: "fake/fake-keyword", inputTokens: expect.any(Number) });
    expect(expected.rollouts.find((rollout) => rollout.id === "ro-agl-order")).toMatchObject({ agent: postAnalyzer.id, input: { content: POST }, inputTokens: 30, rewards: [expect.objectContaining({ value: 0.5 })] });
    expect(expected.rollouts.find((rollout) => rollout.id === "ro-agl-calls-only")).toMatchObject({ input: { text: "question 0" }, output: { text: "answer 2" }, model: "model-a, model-b, model-c", inputTokens: 15 });

    // A simple span processor exports each span as it ends: children before their parents, one per request.
    // (Each export is awaited: spans ending all at once would pass the exporter's concurrency limit.)
    const processor = new SimpleSpanProcessor(new ProtobufExporter({ url: `${oneByOne.url}/v1/traces` }));
    for (const span of [...all].sort((a, b) => a.endTime[0] - b.endTime[0] || a.endTime[1] - b.endTime[1])) {
      processor.onEnd(span);
      await processor.forceFlush();
    }
    await processor.shutdown();
    expect(await snapshot(oneByOne.store)).toEqual(expected);

    // Shuffled into batches of 1 to 7, some sent twice, 4 requests in flight.
    const next = random(14);
    const order = [...all].sort(() => next() - 0.5);
    const batches: ReadableSpan[][] = [];
    for (let at = 0; at < order.length; ) {
      const size = 1 + Math.floor(next() * 7);
      batches.push(order.slice(at, at + size));
      at += size;
    }
    const requests = [...batches, ...batches.filter(() => next() < 0.3)];
    const json = new JsonExporter({ url: `${shuffled.url}/v1/traces`, concurrencyLimit: 8 });
    let taken = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (taken < requests.length) expect(await exportSpans(json, requests[taken++]!)).toEqual({ code: 0 });
      }),
    );
    await json.shutdown();
    expect(await snapshot(shuffled.store)).toEqual(expected);

    // The late runs' agent spans come last, after the rest of their runs and all other traffic.
    const protobuf = new ProtobufExporter({ url: `${lateParents.url}/v1/traces` });
    for (const span of late.filter((candidate) => !isAgentSpan(candidate))) expect(await exportSpans(protobuf, [span])).toEqual({ code: 0 });
    for (let at = 0; at < traffic.length; at += 3) expect(await exportSpans(protobuf, traffic.slice(at, at + 3))).toEqual({ code: 0 });
    const waiting = await snapshot(lateParents.store);
    expect(waiting.rollouts).toHaveLength(9);
    for (const span of late.filter(isAgentSpan)) expect(await exportSpans(protobuf, [span])).toEqual({ code: 0 });
    await protobuf.shutdown();
    expect(await snapshot(lateParents.store)).toEqual(expected);
  });
});

describe.each(BACKENDS)("late spans correct and complete their rollout (%s)", (backend) => {
  const server = serveOtlp(backend);
  const exporter = () => new ProtobufExporter({ url: `${server.url}/v1/traces` });

  test("Agent Lightning: a model call that arrives before its agent span makes a provisional rollout; the agent span, when it comes, decides agent and input", async () => {
    const spans = recordSpans({ "service.name": "trainer", ...lightning("ro-late-agent") }, (tracer) => recordMastraRun(tracer, { tokens: { input: 21, output: 5 } }));
    const sender = exporter();
    const chat = spans.find((span) => span.name.startsWith("chat "))!;
    expect(await exportSpans(sender, [chat])).toEqual({ code: 0 });
    expect(await server.store.rollouts.get("ro-agl-late-agent")).toMatchObject({ agent: "trainer", input: {}, inputTokens: 21 });

    for (const span of spans.filter((span) => span !== chat)) expect(await exportSpans(sender, [span])).toEqual({ code: 0 });
    expect(await server.store.rollouts.get("ro-agl-late-agent")).toMatchObject({ agent: postAnalyzer.id, input: { content: POST }, output: ANSWER, model: "fake/fake-keyword", inputTokens: 21, outputTokens: 5 });
    await sender.shutdown();
  });

  test("Agent Lightning: a span without the rollout id, under one of its spans, joins that rollout, whose spans in other traces still count", async () => {
    // Start times a second apart: recorded in one millisecond, the two calls would be ordered by their random span ids.
    const startedAt = Date.now();
    const chat = (tracer: Tracer, model: string, tokens: number, offsetMs: number, parent?: Context) =>
      tracer.startSpan(`chat ${model}`, { startTime: startedAt + offsetMs, attributes: { "gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.usage.input_tokens": tokens } }, parent).end(startedAt + offsetMs + 10);
    const elsewhere = recordSpans({ "service.name": "trainer", ...lightning("ro-split") }, (tracer) => chat(tracer, "model-a", 5, 0));
    let agentSpan!: Span;
    const agentRun = recordSpans({ "service.name": "trainer", ...lightning("ro-split") }, (tracer) => {
      agentSpan = recordMastraRun(tracer, { tokens: { input: 0, output: 0 } });
    });
    const inherited = recordSpans({ "service.name": "tool-service" }, (tracer) => chat(tracer, "model-b", 7, 1_000, trace.setSpanContext(context.active(), agentSpan.spanContext())));
    const sender = exporter();
    for (const spans of [elsewhere, agentRun, inherited]) expect(await exportSpans(sender, spans)).toEqual({ code: 0 });
    expect(await server.store.rollouts.get("ro-agl-split")).toMatchObject({ agent: postAnalyzer.id, inputTokens: 12, model: "fake/fake-keyword, model-a, model-b" });
    expect((await server.store.traces.spansOfRollout("ro-agl-split")).length).toBe(6);
    await sender.shutdown();
  });

  test("Mastra: model calls that arrive after the agent span add their model and tokens; sending everything again changes nothing", async () => {
    let agentSpanId = "";
    const spans = recordSpans({ "service.name": "shop" }, (tracer) => {
      agentSpanId = recordMastraRun(tracer, { tokens: { input: 44, output: 7 } }).spanContext().spanId;
    });
    const sender = exporter();
    const agentSpan = spans.find((span) => span.spanContext().spanId === agentSpanId)!;
    expect(await exportSpans(sender, [agentSpan])).toEqual({ code: 0 });
    const rolloutId = agentSpanRolloutKey(agentSpan.spanContext().traceId, agentSpanId);
    expect(await server.store.rollouts.get(rolloutId)).toMatchObject({ input: { content: POST }, model: null, inputTokens: null });

    for (const span of spans.filter((span) => span !== agentSpan)) expect(await exportSpans(sender, [span])).toEqual({ code: 0 });
    const complete = await server.store.rollouts.get(rolloutId);
    expect(complete).toMatchObject({ input: { content: POST }, output: ANSWER, model: "fake/fake-keyword", inputTokens: 44, outputTokens: 7 });

    const before = await snapshot(server.store);
    expect(await exportSpans(sender, spans)).toEqual({ code: 0 });
    expect(await snapshot(server.store)).toEqual(before);
    await sender.shutdown();
  });
});

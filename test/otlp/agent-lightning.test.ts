import { SpanKind } from "@opentelemetry/api";
import { OTLPTraceExporter as ProtobufExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import type { Tracer } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { ANSWER, exportSpans, POST, recordMastraRun, recordSpans, type SpanAttributes } from "../support/otlp.ts";
import { serveOtlp } from "../support/otlp-server.ts";
import { BACKENDS } from "../support/stores.ts";

/** Resource attributes the Agent Lightning tracer puts on a rollout's spans. */
const lightning = (rolloutId: string): SpanAttributes => ({ "service.name": "trainer", "agentlightning.rollout_id": rolloutId, "agentlightning.attempt_id": "at-1" });

/** What `emit_reward` sends: an annotation span with the reward dimensions flattened, the primary first. */
function rewardAttributes(dimensions: [string, number][]): SpanAttributes {
  return Object.fromEntries(dimensions.flatMap(([name, value], index) => [[`agentlightning.reward.${index}.name`, name], [`agentlightning.reward.${index}.value`, value]]));
}

describe.each(BACKENDS)("Agent Lightning ids and reward spans (%s)", (backend) => {
  const server = serveOtlp(backend);
  let exporter: ProtobufExporter;
  beforeAll(() => {
    exporter = new ProtobufExporter({ url: `${server.url}/v1/traces` });
  });
  afterAll(() => exporter?.shutdown());

  const agentRun = (resource: SpanAttributes, after?: (tracer: Tracer) => void) =>
    recordSpans(resource, (tracer) => {
      recordMastraRun(tracer);
      after?.(tracer);
    });

  test("spans carrying agentlightning.rollout_id form that rollout; its reward spans become rewards, every dimension kept", async () => {
    const spans = agentRun(lightning("ro-5d1e"), (tracer) => {
      tracer.startSpan("agentlightning.annotation", { attributes: rewardAttributes([["task_completion", 1], ["efficiency", 0.25]]) }).end();
    });
    expect(await exportSpans(exporter, spans)).toEqual({ code: 0 });
    const rollout = await server.store.rollouts.get("ro-agl-5d1e");
    expect(rollout).toMatchObject({ agent: postAnalyzer.id, source: "otlp", input: { content: POST }, output: ANSWER, inputTokens: 20, outputTokens: 4 });
    const annotation = spans.find((span) => span.name === "agentlightning.annotation")!;
    expect(rollout.rewards.map(({ scorer, value, reason, details, dedupeKey }) => ({ scorer, value, reason, details, dedupeKey }))).toEqual([
      {
        scorer: "agentlightning",
        value: 1,
        reason: "reward annotation span agentlightning.annotation",
        details: { traceId: annotation.spanContext().traceId, spanId: annotation.spanContext().spanId, dimension: "task_completion", agentLightningRolloutId: "ro-5d1e", agentLightningAttemptId: "at-1" },
        dedupeKey: annotation.spanContext().spanId,
      },
      {
        scorer: "agentlightning.efficiency",
        value: 0.25,
        reason: "reward annotation span agentlightning.annotation (efficiency)",
        details: { traceId: annotation.spanContext().traceId, spanId: annotation.spanContext().spanId, dimension: "efficiency", agentLightningRolloutId: "ro-5d1e", agentLightningAttemptId: "at-1" },
        dedupeKey: annotation.spanContext().spanId,
      },
    ]);
    expect(await exportSpans(exporter, spans)).toEqual({ code: 0 });
    expect((await server.store.rollouts.get("ro-agl-5d1e")).rewards).toHaveLength(2);
  });

  test("a reward that arrives before its rollout's spans waits in its span and counts once they arrive", async () => {
    const reward = recordSpans(lightning("ro-early"), (tracer) => tracer.startSpan("agentlightning.annotation", { attributes: rewardAttributes([["primary", -0.5]]) }).end());
    expect(await exportSpans(exporter, reward)).toEqual({ code: 0 });
    await expect(server.store.rollouts.get("ro-agl-early")).rejects.toThrow('Rollout "ro-agl-early" does not exist.');

    expect(await exportSpans(exporter, agentRun(lightning("ro-early")))).toEqual({ code: 0 });
    const rollout = await server.store.rollouts.get("ro-agl-early");
    expect(rollout.rewards.map((item) => [item.scorer, item.value])).toEqual([["agentlightning", -0.5]]);
    expect((await server.store.traces.spansOfRollout("ro-agl-early")).map((span) => span.name)).toContain("agentlightning.annotation");
  });

  test("model calls alone under a rollout id still make the rollout; the v0.2 `reward` attribute is read too", async () => {
    const spans = recordSpans(lightning("ro-calls"), (tracer) => {
      tracer
        .startSpan("chat gpt-4o-mini", {
          kind: SpanKind.CLIENT,
          attributes: {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.provider.name": "openai",
            "gen_ai.input.messages": JSON.stringify([{ role: "user", parts: [{ type: "text", content: "2 + 2?" }] }]),
            "gen_ai.output.messages": JSON.stringify([{ role: "assistant", parts: [{ type: "text", content: "4" }] }]),
            "gen_ai.usage.input_tokens": 5,
            "gen_ai.usage.output_tokens": 1,
          },
        })
        .end();
      tracer.startSpan("agentlightning.annotation", { attributes: { reward: 1 } }).end();
    });
    expect(await exportSpans(exporter, spans)).toEqual({ code: 0 });
    expect(await server.store.rollouts.get("ro-agl-calls")).toMatchObject({
      agent: "trainer",
      input: { text: "2 + 2?" },
      output: { text: "4" },
      model: "openai/gpt-4o-mini",
      inputTokens: 5,
      outputTokens: 1,
      rewards: [expect.objectContaining({ scorer: "agentlightning", value: 1 })],
    });
  });

  test("a reward outside [-1, 1] is refused with a partial success; the rest of the request is stored", async () => {
    const spans = agentRun(lightning("ro-loud"), (tracer) => {
      tracer.startSpan("agentlightning.annotation", { attributes: rewardAttributes([["primary", 7]]) }).end();
    });
    const response = await fetch(`${server.url}/v1/traces`, { method: "POST", headers: { "content-type": "application/x-protobuf" }, body: ProtobufTraceSerializer.serializeRequest(spans)! });
    expect(response.status).toBe(200);
    const answer = ProtobufTraceSerializer.deserializeResponse(new Uint8Array(await response.arrayBuffer()));
    expect(Number(answer.partialSuccess?.rejectedSpans)).toBe(1);
    expect(answer.partialSuccess?.errorMessage).toMatch(/^1 span rejected, the others stored: span [0-9a-f]{16} \(agentlightning\.annotation\) of trace [0-9a-f]{32}: reward "primary" is 7, outside \[-1, 1\]/);
    const rollout = await server.store.rollouts.get("ro-agl-loud");
    expect(rollout.rewards).toEqual([]);
    expect(await server.store.traces.spansOfRollout("ro-agl-loud")).toHaveLength(spans.length - 1);
  });

  test("ids and texts with quotes, backslashes and dollar-quote tags are stored exactly (they travel as SQL literals)", async () => {
    const awkward = `ro-'q' "dq" \\ $agl$ $agl0$ {x,y}`;
    const instructions = `Say $agl$ or $agl0$, 'quoted' "twice" \\ {a,b} \u00e9`;
    const reward = recordSpans(lightning(awkward), (tracer) => tracer.startSpan("agentlightning.annotation", { attributes: rewardAttributes([["primary", 0.5]]) }).end());
    expect(await exportSpans(exporter, reward)).toEqual({ code: 0 });
    const spans = recordSpans(lightning(awkward), (tracer) => recordMastraRun(tracer, { instructions }));
    expect(await exportSpans(exporter, spans)).toEqual({ code: 0 });
    const rolloutId = `ro-agl-${awkward.slice("ro-".length)}`;
    const rollout = await server.store.rollouts.get(rolloutId);
    expect(rollout).toMatchObject({ instructions, input: { content: POST } });
    // The reward came first, so it was found by the rollout id in the read of the later request.
    expect(rollout.rewards.map((item) => [item.scorer, item.value, item.details.agentLightningRolloutId])).toEqual([["agentlightning", 0.5, awkward]]);
    expect(await server.store.traces.spansOfRollout(rolloutId)).toHaveLength(spans.length + 1);
  });

  test("a request too large for literals (its rows go as parameters) is stored whole, and once when sent again", async () => {
    const instructions = `Classify the post. ${"Answer with the category and the sentiment. ".repeat(30)}`;
    const spans = recordSpans({ "service.name": "trainer" }, (tracer) => {
      for (let run = 0; run < 60; run++) recordMastraRun(tracer, { instructions, metadata: lightning(`ro-large-${run}`) });
    });
    expect(await exportSpans(exporter, spans)).toEqual({ code: 0 });
    expect(await exportSpans(exporter, spans)).toEqual({ code: 0 });
    for (const run of [0, 59]) {
      expect(await server.store.rollouts.get(`ro-agl-large-${run}`)).toMatchObject({ instructions, input: { content: POST }, output: ANSWER });
      expect(await server.store.traces.spansOfRollout(`ro-agl-large-${run}`)).toHaveLength(spans.length / 60);
    }
  });

  test("large requests run as concurrent transactions on PostgreSQL (one at a time on PGlite) and still build whole rollouts from spans split between them", async () => {
    expect(await server.store.traces.concurrentIngests()).toBe(backend === "postgres" ? 2 : 1);
    const runs = 140;
    const spans = recordSpans({ "service.name": "trainer" }, (tracer) => {
      for (let run = 0; run < runs; run++) recordMastraRun(tracer, { tokens: { input: run, output: 1 }, metadata: lightning(`ro-split-${run}`) });
    });
    // Each run's four spans, half in one request and half in the other, both over the size that overlaps.
    const perRun = spans.length / runs;
    const halves = [0, 1].map((half) => spans.filter((_, index) => Math.floor((index % perRun) / (perRun / 2)) === half));
    const answers = await Promise.all(
      halves.map((half) => fetch(`${server.url}/v1/traces`, { method: "POST", headers: { "content-type": "application/x-protobuf" }, body: ProtobufTraceSerializer.serializeRequest(half)! })),
    );
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    for (let run = 0; run < runs; run++) {
      expect(await server.store.rollouts.get(`ro-agl-split-${run}`)).toMatchObject({ agent: postAnalyzer.id, input: { content: POST }, output: ANSWER, inputTokens: run, outputTokens: 1 });
    }
  });
});

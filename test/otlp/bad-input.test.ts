import { gzipSync } from "node:zlib";
import { JsonTraceSerializer, ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { sql } from "kysely";
import { beforeAll, describe, expect, test } from "vitest";
import { bundledAgents } from "../../agents/examples.ts";
import { createAgentRegistry } from "../../agents/registry.ts";
import { decodeTraceRequest } from "../../server/otlp/decode.ts";
import { ingestSpans } from "../../server/otlp/ingest.ts";
import { recordMastraRun, recordSpans } from "../support/otlp.ts";
import { serveOtlp } from "../support/otlp-server.ts";
import { BACKENDS } from "../support/stores.ts";

const LIMIT = 4 * 1024 * 1024;

function agentRun(agent = "support-bot") {
  return recordSpans({ "service.name": "support" }, (tracer) => recordMastraRun(tracer, { agent, userMessage: "Where is my order?", answer: { intent: "order_status" } }));
}

function post(server: { url: string }, body: RequestInit["body"], headers: Record<string, string>, init: RequestInit = {}): Promise<Response> {
  return fetch(`${server.url}/v1/traces`, { method: "POST", headers, body, ...init });
}

describe("bad input to POST /v1/traces: the right 4xx with a message, nothing stored, the server still up", () => {
  const server = serveOtlp("pglite");
  const protobufBody = () => ProtobufTraceSerializer.serializeRequest(agentRun())!;

  /** A google.rpc.Status in the request's format; its message is readable in the protobuf bytes too. */
  async function expectStatus(response: Response, status: number, format: "json" | "protobuf", message: RegExp): Promise<void> {
    expect(response.status).toBe(status);
    if (format === "json") {
      expect(response.headers.get("content-type")).toBe("application/json");
      const body = (await response.json()) as { code: number; message: string };
      expect(body.code).toBeGreaterThan(0);
      expect(body.message).toMatch(message);
    } else {
      expect(response.headers.get("content-type")).toBe("application/x-protobuf");
      expect(Buffer.from(await response.arrayBuffer()).toString("utf8")).toMatch(message);
    }
  }

  test("each bad request is refused with its reason and stores nothing", async () => {
    await expectStatus(await post(server, "hello", { "content-type": "text/plain" }), 415, "json", /^Content-Type "text\/plain" is not supported: send application\/x-protobuf or application\/json/);
    await expectStatus(
      await post(server, protobufBody(), { "content-type": "application/x-protobuf", "content-encoding": "br" }),
      415,
      "protobuf",
      /Content-Encoding "br" is not supported: send gzip or no Content-Encoding/,
    );
    const full = protobufBody();
    await expectStatus(
      await post(server, full.slice(0, full.length - 9), { "content-type": "application/x-protobuf" }),
      400,
      "protobuf",
      /The body is not a protobuf ExportTraceServiceRequest \(index out of range/,
    );
    await expectStatus(await post(server, "these bytes are not protobuf", { "content-type": "application/x-protobuf" }), 400, "protobuf", /The body is not a protobuf ExportTraceServiceRequest/);
    await expectStatus(
      await post(server, JSON.stringify({ hello: "world" }), { "content-type": "application/json" }),
      400,
      "json",
      /^The JSON is not an OTLP ExportTraceServiceRequest: resourceSpans: .*Expected \{"resourceSpans"/,
    );
    await expectStatus(
      await post(server, JSON.stringify({ resourceSpans: [{ scopeSpans: "nope" }] }), { "content-type": "application/json; charset=utf-8" }),
      400,
      "json",
      /^The JSON is not an OTLP ExportTraceServiceRequest: resourceSpans\.0\.scopeSpans:/,
    );
    await expectStatus(await post(server, '{"resourceSpans": [', { "content-type": "application/json" }), 400, "json", /^The body is not JSON/);
    await expectStatus(await post(server, Buffer.from("not gzip at all"), { "content-type": "application/json", "content-encoding": "gzip" }), 400, "json", /^The body is not valid gzip/);

    const tooLarge = /^The body has more than 4194304 bytes, the limit of this server \(server\.maxBodyBytes, AGL_MAX_BODY_BYTES\): export smaller batches\.$/;
    await expectStatus(await post(server, Buffer.alloc(LIMIT + 1, 0x20), { "content-type": "application/json" }), 413, "json", tooLarge);
    // Without Content-Length the limit is enforced while reading.
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let index = 0; index < 5; index++) controller.enqueue(new Uint8Array(1024 * 1024).fill(0x20));
        controller.close();
      },
    });
    await expectStatus(await post(server, chunked, { "content-type": "application/json" }, { duplex: "half" } as RequestInit), 413, "json", tooLarge);
    // 64 MiB of zeros in about 64 KiB: inflation stops at the limit.
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(LIMIT);
    await expectStatus(
      await post(server, bomb, { "content-type": "application/x-protobuf", "content-encoding": "gzip" }),
      413,
      "protobuf",
      /The body decompresses to more than 4194304 bytes/,
    );

    expect(await server.store.traces.totals()).toEqual({ spans: 0, rollouts: 0 });
    expect(await (await fetch(`${server.url}/healthz`)).json()).toEqual({ ok: true });
  });

  test("malformed spans are rejected with a partial success and the rest is stored, gzip or not", async () => {
    const spans = agentRun();
    const request = JSON.parse(new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans)!)) as {
      resourceSpans: { scopeSpans: { spans: { traceId: string; spanId: string; name: string }[] }[] }[];
    };
    const scopeSpans = request.resourceSpans[0]!.scopeSpans[0]!;
    const chat = scopeSpans.spans.find((span) => span.name === "chat fake-keyword")!;
    chat.traceId = "not-hex";
    scopeSpans.spans.push({ spanId: "00f067aa0ba902b7" } as never);

    const response = await post(server, gzipSync(JSON.stringify(request)), { "content-type": "application/json", "content-encoding": "gzip" });
    expect(response.status).toBe(200);
    const answer = JsonTraceSerializer.deserializeResponse(new Uint8Array(await response.arrayBuffer()));
    expect(answer.partialSuccess?.rejectedSpans).toBe("2");
    expect(answer.partialSuccess?.errorMessage).toBe(
      "2 spans rejected, the others stored: resourceSpans[0].scopeSpans[0].spans[0] (chat fake-keyword): traceId must be 16 bytes (32 hex digits), not all zero; resourceSpans[0].scopeSpans[0].spans[4]: traceId: Invalid input: expected string, received undefined (and 2 more problems)",
    );
    const stored = await server.store.traces.spansOfTrace(spans[0]!.spanContext().traceId);
    expect(stored.map((span) => span.name).sort()).toEqual(["agent_step post-analyzer", "invoke_agent support-bot", "model_generation fake-keyword"]);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });
});

describe.each(BACKENDS)("a store failure in the middle of a request (%s)", (backend) => {
  const server = serveOtlp(backend);
  beforeAll(async () => {
    // Fails the rollout insert after the request's spans were written in the same transaction.
    await sql`
      CREATE FUNCTION refuse_exploding_agent() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
      CREATE TRIGGER refuse_exploding_agent BEFORE INSERT ON rollouts FOR EACH ROW WHEN (NEW.agent = 'explode') EXECUTE FUNCTION refuse_exploding_agent();
    `.execute(server.store.db);
  });

  test("rolls back the whole request: no span, rollout or reward of it is stored, and the next request is served", async () => {
    const body = ProtobufTraceSerializer.serializeRequest([...agentRun("support-bot"), ...agentRun("explode")])!;
    const failed = await post(server, body, { "content-type": "application/x-protobuf" });
    expect(failed.status).toBe(503);
    expect(Buffer.from(await failed.arrayBuffer()).toString("utf8")).toContain("The spans could not be stored, so nothing of this request was kept");
    expect(await server.store.traces.totals()).toEqual({ spans: 0, rollouts: 0 });

    const served = await post(server, ProtobufTraceSerializer.serializeRequest(agentRun("support-bot"))!, { "content-type": "application/x-protobuf" });
    expect(served.status).toBe(200);
    expect(await server.store.traces.totals()).toEqual({ spans: 4, rollouts: 1 });
  });

  test("requests written together (group commit) are retried one by one when their transaction fails: only the bad one fails", async () => {
    const spansOf = (agent: string) => decodeTraceRequest(ProtobufTraceSerializer.serializeRequest(agentRun(agent))!, "protobuf").spans;
    const before = await server.store.traces.totals();
    // Submitted in one tick: the first goes alone, the other three wait and share the next transaction.
    const agents = createAgentRegistry(bundledAgents);
    const outcomes = await Promise.allSettled(["support-bot", "explode", "support-bot", "support-bot"].map((agent) => ingestSpans(server.store, spansOf(agent), agents)));
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
    expect(String((outcomes[1] as PromiseRejectedResult).reason)).toContain("refused by the test");
    expect(await server.store.traces.totals()).toEqual({ spans: before.spans + 12, rollouts: before.rollouts + 3 });
  });
});

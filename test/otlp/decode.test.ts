import generatedRoot from "@opentelemetry/otlp-transformer/build/src/generated/root.js";
import protobuf from "protobufjs/minimal.js";
import { describe, expect, test } from "vitest";
import { decodeTraceRequest } from "../../server/otlp/decode.ts";

/** The long package's class, which protobufjs encodes 64-bit fields from (its typings leave out the statics). */
const Long = protobuf.util.Long as unknown as { fromString(digits: string, unsigned?: boolean): object };
const ExportTraceServiceRequest = (generatedRoot as unknown as { opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceRequest: { encode(message: object): { finish(): Uint8Array } } } } } } } })
  .opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

/** 64-bit values at the edges: beyond 2^53, negative, the extremes; times in nanoseconds with sub-millisecond digits. */
const INTEGERS = { small: "-5", beyondDouble: "9007199254740993", min: "-9223372036854775808", max: "9223372036854775807" };
const START_NANOS = "1796040000123456789";
const END_NANOS = "1796040000987654321";

function request(encodeInteger: (digits: string) => unknown, encodeTime: (digits: string) => unknown) {
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: "service.name", value: { stringValue: "decode-test" } }] },
        scopeSpans: [
          {
            spans: [
              {
                traceId: "0af7651916cd43dd8448eb211c80319c",
                spanId: "b7ad6b7169203331",
                name: "integers",
                kind: 1,
                startTimeUnixNano: encodeTime(START_NANOS),
                endTimeUnixNano: encodeTime(END_NANOS),
                attributes: Object.entries(INTEGERS).map(([key, digits]) => ({ key, value: { intValue: encodeInteger(digits) } })),
              },
            ],
          },
        ],
      },
    ],
  };
}

describe("OTLP decoding of 64-bit integers", () => {
  test("protobuf and JSON give the same exact values: integers within 2^53 as numbers, beyond as text, times to the millisecond", () => {
    const protobufRequest = request((digits) => Long.fromString(digits), (digits) => Long.fromString(digits, true));
    const hexIds = (span: { traceId: string; spanId: string }) => ({ ...span, traceId: Buffer.from(span.traceId, "hex"), spanId: Buffer.from(span.spanId, "hex") });
    protobufRequest.resourceSpans[0]!.scopeSpans[0]!.spans = protobufRequest.resourceSpans[0]!.scopeSpans[0]!.spans.map(hexIds) as never;
    const fromProtobuf = decodeTraceRequest(ExportTraceServiceRequest.encode(protobufRequest).finish(), "protobuf");
    const fromJson = decodeTraceRequest(new TextEncoder().encode(JSON.stringify(request((digits) => digits, (digits) => digits))), "json");

    expect(fromProtobuf.rejected).toEqual([]);
    const [span] = fromProtobuf.spans;
    expect(span!.attributes).toEqual({ small: -5, beyondDouble: "9007199254740993", min: "-9223372036854775808", max: "9223372036854775807" });
    expect(span!.start.toISOString()).toBe("2026-11-30T12:00:00.123Z");
    expect(span!.end.toISOString()).toBe("2026-11-30T12:00:00.987Z");
    expect(span!.traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(span!.spanId).toBe("b7ad6b7169203331");
    expect(fromProtobuf).toEqual(fromJson);
  });
});

// OTLP/HTTP trace requests in, responses out (https://opentelemetry.io/docs/specs/otlp/#otlphttp).
// Protobuf goes through the protobufjs code that @opentelemetry/otlp-transformer generated from
// opentelemetry-proto: 0.216.0 is the last release that ships it (later ones only encode requests).
import generatedRoot from "@opentelemetry/otlp-transformer/build/src/generated/root.js";
import protobuf from "protobufjs/minimal.js";
import { z } from "zod";
import type { AttributeValue, SpanRecord } from "../../store/traces.ts";

export type OtlpFormat = "protobuf" | "json";

/** The request as a whole was not taken: answered with this status, and nothing of it is stored. */
export class OtlpRequestError extends Error {
  override name = "OtlpRequestError";
  readonly status: 400 | 413 | 415 | 503;
  constructor(status: 400 | 413 | 415 | 503, message: string) {
    super(message);
    this.status = status;
  }
}

export interface DecodedTraces {
  spans: SpanRecord[];
  /** One message per span that was rejected (malformed ids, times, …); the others are kept. */
  rejected: string[];
}

interface Long {
  low: number;
  high: number;
}
interface ProtoAnyValue {
  value?: "stringValue" | "boolValue" | "intValue" | "doubleValue" | "arrayValue" | "kvlistValue" | "bytesValue";
  stringValue?: string | null;
  boolValue?: boolean | null;
  intValue?: Long | number | null;
  doubleValue?: number | null;
  arrayValue?: { values: ProtoAnyValue[] } | null;
  kvlistValue?: { values: ProtoKeyValue[] } | null;
  bytesValue?: Uint8Array | null;
}
interface ProtoKeyValue {
  key: string;
  value?: ProtoAnyValue | null;
}
interface ProtoSpan {
  traceId: Uint8Array;
  spanId: Uint8Array;
  parentSpanId?: Uint8Array | null;
  name: string;
  kind: number;
  startTimeUnixNano: Long | number;
  endTimeUnixNano: Long | number;
  attributes: ProtoKeyValue[];
  status?: { code?: number | null; message?: string | null } | null;
}
interface ProtoTraceRequest {
  resourceSpans: {
    resource?: { attributes: ProtoKeyValue[] } | null;
    scopeSpans: { scope?: { name?: string | null } | null; spans: ProtoSpan[] }[];
  }[];
}
interface GeneratedMessage<T> {
  decode(bytes: Uint8Array): T;
  encode(message: object): { finish(): Uint8Array };
}
const traceService = (
  generatedRoot as unknown as {
    opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceRequest: GeneratedMessage<ProtoTraceRequest>; ExportTraceServiceResponse: GeneratedMessage<unknown> } } } } };
  }
).opentelemetry.proto.collector.trace.v1;

export function decodeTraceRequest(body: Uint8Array, format: OtlpFormat): DecodedTraces {
  return format === "protobuf" ? decodeProtobuf(body) : decodeJson(body);
}

function decodeProtobuf(body: Uint8Array): DecodedTraces {
  let request: ProtoTraceRequest;
  try {
    request = traceService.ExportTraceServiceRequest.decode(body);
  } catch (error) {
    throw new OtlpRequestError(400, `The body is not a protobuf ExportTraceServiceRequest (${(error as Error).message}); send the bytes an OTLP exporter produces, or JSON with Content-Type: application/json.`);
  }
  const decoded: DecodedTraces = { spans: [], rejected: [] };
  request.resourceSpans.forEach((resourceSpans, resourceIndex) => {
    const resource = protoAttributes(resourceSpans.resource?.attributes ?? []);
    resourceSpans.scopeSpans.forEach((scopeSpans, scopeIndex) => {
      scopeSpans.spans.forEach((span, spanIndex) => {
        collect(decoded, `resourceSpans[${resourceIndex}].scopeSpans[${scopeIndex}].spans[${spanIndex}]`, {
          traceId: hexOfBytes(span.traceId, 16),
          spanId: hexOfBytes(span.spanId, 8),
          parentSpanId: span.parentSpanId && span.parentSpanId.length > 0 ? (hexOfBytes(span.parentSpanId, 8) ?? false) : null,
          name: span.name,
          kind: span.kind,
          startTimeUnixNano: bigIntOfLong(span.startTimeUnixNano, false),
          endTimeUnixNano: bigIntOfLong(span.endTimeUnixNano, false),
          statusCode: span.status?.code ?? 0,
          statusMessage: span.status?.message || null,
          attributes: protoAttributes(span.attributes),
          resource,
          scope: scopeSpans.scope?.name || null,
        });
      });
    });
  });
  return decoded;
}

function protoAttributes(list: readonly ProtoKeyValue[]): Record<string, AttributeValue> {
  return Object.fromEntries(list.map((entry) => [entry.key, entry.value ? protoValue(entry.value) : null]));
}

function protoValue(value: ProtoAnyValue): AttributeValue {
  switch (value.value) {
    case "stringValue":
      return value.stringValue ?? "";
    case "boolValue":
      return value.boolValue ?? false;
    case "intValue":
      return integer(bigIntOfLong(value.intValue ?? 0, true));
    case "doubleValue":
      return value.doubleValue ?? 0;
    case "arrayValue":
      return (value.arrayValue?.values ?? []).map(protoValue);
    case "kvlistValue":
      return protoAttributes(value.kvlistValue?.values ?? []);
    case "bytesValue":
      return Buffer.from(value.bytesValue ?? []).toString("base64");
    default:
      return null;
  }
}

function hexOfBytes(bytes: Uint8Array, length: number): string | null {
  return bytes.length === length ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex") : null;
}

/** protobufjs gives a 64-bit field as a Long when the long package is there, else as a number; Long's own toString is slow. */
function bigIntOfLong(value: Long | number, signed: boolean): bigint {
  if (typeof value === "number") return BigInt(value);
  const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
  return signed ? BigInt.asIntN(64, bits) : bits;
}

// OTLP/JSON: lowerCamelCase keys, hex ids, enums as integers, 64-bit integers as strings or numbers; unknown keys are ignored.
const int64 = z.union([z.string().regex(/^-?\d+$/, "expected a whole number"), z.number().refine(Number.isInteger, "expected a whole number")]);
type JsonAnyValue = {
  stringValue?: string | undefined;
  boolValue?: boolean | undefined;
  intValue?: string | number | undefined;
  doubleValue?: number | string | undefined;
  arrayValue?: { values?: JsonAnyValue[] | undefined } | undefined;
  kvlistValue?: { values?: JsonKeyValue[] | undefined } | undefined;
  bytesValue?: string | undefined;
};
type JsonKeyValue = { key: string; value?: JsonAnyValue | undefined };
const jsonAnyValue: z.ZodType<JsonAnyValue> = z.lazy(() =>
  z.object({
    stringValue: z.string().optional(),
    boolValue: z.boolean().optional(),
    intValue: int64.optional(),
    doubleValue: z.union([z.number(), z.enum(["NaN", "Infinity", "-Infinity"])]).optional(),
    arrayValue: z.object({ values: z.array(jsonAnyValue).optional() }).optional(),
    kvlistValue: z.object({ values: z.array(jsonKeyValue).optional() }).optional(),
    bytesValue: z.string().optional(),
  }),
);
const jsonKeyValue: z.ZodType<JsonKeyValue> = z.lazy(() => z.object({ key: z.string(), value: jsonAnyValue.optional() }));
const jsonAttributes = z.array(jsonKeyValue).optional();

const jsonTraceRequest = z.object({
  resourceSpans: z.array(
    z.object({
      resource: z.object({ attributes: jsonAttributes }).optional(),
      scopeSpans: z
        .array(
          z.object({
            scope: z.object({ name: z.string().optional() }).optional(),
            // Checked one by one below: a bad span is rejected, the rest of the request is kept.
            spans: z.array(z.unknown()).optional(),
          }),
        )
        .optional(),
    }),
  ),
});

const jsonSpan = z.object({
  traceId: z.string(),
  spanId: z.string(),
  parentSpanId: z.string().optional(),
  name: z.string().default(""),
  kind: z.number().int().default(0),
  startTimeUnixNano: int64,
  endTimeUnixNano: int64,
  attributes: jsonAttributes,
  status: z.object({ code: z.number().int().optional(), message: z.string().optional() }).optional(),
});

function decodeJson(body: Uint8Array): DecodedTraces {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (error) {
    throw new OtlpRequestError(400, `The body is not JSON (${(error as Error).message}); send an OTLP/JSON ExportTraceServiceRequest.`);
  }
  const request = jsonTraceRequest.safeParse(value);
  if (!request.success) {
    throw new OtlpRequestError(400, `The JSON is not an OTLP ExportTraceServiceRequest: ${describeIssues(request.error)}. Expected {"resourceSpans": [{"resource": {…}, "scopeSpans": [{"spans": [...]}]}]}.`);
  }
  const decoded: DecodedTraces = { spans: [], rejected: [] };
  request.data.resourceSpans.forEach((resourceSpans, resourceIndex) => {
    const resource = jsonAttributesOf(resourceSpans.resource?.attributes);
    (resourceSpans.scopeSpans ?? []).forEach((scopeSpans, scopeIndex) => {
      (scopeSpans.spans ?? []).forEach((candidate, spanIndex) => {
        const where = `resourceSpans[${resourceIndex}].scopeSpans[${scopeIndex}].spans[${spanIndex}]`;
        const span = jsonSpan.safeParse(candidate);
        if (!span.success) {
          decoded.rejected.push(`${where}: ${describeIssues(span.error)}`);
          return;
        }
        collect(decoded, where, {
          traceId: hexOfText(span.data.traceId, 16),
          spanId: hexOfText(span.data.spanId, 8),
          parentSpanId: span.data.parentSpanId ? (hexOfText(span.data.parentSpanId, 8) ?? false) : null,
          name: span.data.name,
          kind: span.data.kind,
          startTimeUnixNano: bigIntOf(span.data.startTimeUnixNano),
          endTimeUnixNano: bigIntOf(span.data.endTimeUnixNano),
          statusCode: span.data.status?.code ?? 0,
          statusMessage: span.data.status?.message || null,
          attributes: jsonAttributesOf(span.data.attributes),
          resource,
          scope: scopeSpans.scope?.name || null,
        });
      });
    });
  });
  return decoded;
}

function jsonAttributesOf(list: readonly JsonKeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((list ?? []).map((entry) => [entry.key, entry.value ? jsonValue(entry.value) : null]));
}

function jsonValue(value: JsonAnyValue): AttributeValue {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return integer(bigIntOf(value.intValue));
  // JSON has no NaN or infinities; OTLP/JSON spells them as strings, and so does the stored attribute.
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(jsonValue);
  if (value.kvlistValue !== undefined) return jsonAttributesOf(value.kvlistValue.values);
  if (value.bytesValue !== undefined) return value.bytesValue;
  return null;
}

function hexOfText(text: string, length: number): string | null {
  return text.length === length * 2 && /^[0-9a-fA-F]+$/.test(text) ? text.toLowerCase() : null;
}

function bigIntOf(value: string | number): bigint {
  return BigInt(typeof value === "number" ? Math.round(value) : value);
}

/** 64-bit integers fit a JSON number only up to 2^53; larger ones are kept exactly, as text. */
function integer(value: bigint): number | string {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
}

function describeIssues(error: z.ZodError): string {
  const [first] = error.issues;
  const path = first?.path.length ? `${first.path.join(".")}: ` : "";
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problems)` : "";
  return `${path}${first?.message ?? "invalid"}${more}`;
}

/** Ids are null when malformed (a parent id false), so the span can be rejected with a reason. */
interface RawSpan extends Omit<SpanRecord, "traceId" | "spanId" | "parentSpanId" | "start" | "end" | "rolloutId"> {
  traceId: string | null;
  spanId: string | null;
  parentSpanId: string | null | false;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
}

const ZERO_ID = /^0+$/;

function collect(decoded: DecodedTraces, where: string, raw: RawSpan): void {
  const problem =
    raw.traceId === null || ZERO_ID.test(raw.traceId)
      ? "traceId must be 16 bytes (32 hex digits), not all zero"
      : raw.spanId === null || ZERO_ID.test(raw.spanId)
        ? "spanId must be 8 bytes (16 hex digits), not all zero"
        : raw.parentSpanId === false
          ? "parentSpanId must be 8 bytes (16 hex digits) when present"
          : raw.startTimeUnixNano <= 0n
            ? "startTimeUnixNano is missing"
            : raw.endTimeUnixNano < raw.startTimeUnixNano
              ? "endTimeUnixNano is before startTimeUnixNano"
              : null;
  if (problem) {
    decoded.rejected.push(`${where}${raw.name ? ` (${raw.name})` : ""}: ${problem}`);
    return;
  }
  const { startTimeUnixNano, endTimeUnixNano, ...rest } = raw;
  decoded.spans.push({
    ...rest,
    traceId: raw.traceId!,
    spanId: raw.spanId!,
    parentSpanId: raw.parentSpanId || null,
    start: dateOfNanos(startTimeUnixNano),
    end: dateOfNanos(endTimeUnixNano),
    rolloutId: null,
  });
}

function dateOfNanos(nanos: bigint): Date {
  return new Date(Number(nanos / 1_000_000n));
}

export interface PartialSuccess {
  rejectedSpans: number;
  errorMessage: string;
}

/** ExportTraceServiceResponse in the request's format; `partialSuccess` only when something was rejected or is worth a warning. */
export function encodeTraceResponse(format: OtlpFormat, partialSuccess: PartialSuccess | null): Uint8Array | string {
  if (format === "json") {
    return JSON.stringify(partialSuccess ? { partialSuccess: { rejectedSpans: String(partialSuccess.rejectedSpans), errorMessage: partialSuccess.errorMessage } } : {});
  }
  return traceService.ExportTraceServiceResponse.encode(partialSuccess ? { partialSuccess } : {}).finish();
}

/** gRPC status codes the OTLP spec suggests for the google.rpc.Status of a failed request. */
const STATUS_CODES = { 400: 3, 413: 8, 415: 3, 503: 14 } as const;

/** The body of a 4xx answer: a google.rpc.Status {code, message}, as protobuf or JSON like the request. */
export function encodeStatus(format: OtlpFormat, error: OtlpRequestError): Uint8Array | string {
  const code = STATUS_CODES[error.status];
  if (format === "json") return JSON.stringify({ code, message: error.message });
  return protobuf.Writer.create()
    .uint32((1 << 3) | 0)
    .int32(code)
    .uint32((2 << 3) | 2)
    .string(error.message)
    .finish();
}

import type { IncomingMessage } from "node:http";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import type { RouteModule } from "../app.ts";
import { decodeTraceRequest, encodeStatus, encodeTraceResponse, type OtlpFormat, OtlpRequestError, type PartialSuccess } from "../otlp/decode.ts";
import { ingestSpans } from "../otlp/ingest.ts";

const inflate = promisify(gunzip);

const CONTENT_TYPES: Record<string, OtlpFormat> = { "application/x-protobuf": "protobuf", "application/json": "json" };
const MEDIA_TYPE: Record<OtlpFormat, string> = { protobuf: "application/x-protobuf", json: "application/json" };
/** How many rejection messages a partial-success answer quotes; the count covers all of them. */
const QUOTED_PROBLEMS = 5;

/**
 * `POST /v1/traces`: OTLP/HTTP trace export, protobuf or JSON, gzip or not. Answers in the request's format:
 * an ExportTraceServiceResponse (with partialSuccess when spans were refused), or a google.rpc.Status with
 * a 4xx when the request as a whole is unusable. One request is one transaction.
 */
export const otlpRoutes: RouteModule = (app, { config, store }) => {
  app.post("/v1/traces", async (context) => {
    // Node's own request when @hono/node-server serves: the fetch API's Request, Headers and body stream it
    // would otherwise build doubled the server's CPU for a request with nothing to store (about 60 µs more).
    const incoming = (context.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    const header = (name: string) => (incoming ? (incoming.headers[name] as string | undefined) : context.req.header(name));
    const contentType = header("content-type");
    const format = CONTENT_TYPES[(contentType ?? "").split(";")[0]!.trim().toLowerCase()];
    try {
      if (!format) {
        throw new OtlpRequestError(415, `Content-Type ${JSON.stringify(contentType ?? "")} is not supported: send application/x-protobuf or application/json (OTLP/HTTP).`);
      }
      const body = await readBody(incoming ?? context.req.raw.body, header("content-length"), header("content-encoding"), config.server.maxBodyBytes);
      const decoded = decodeTraceRequest(body, format);
      const outcome = await ingestSpans(store, decoded.spans, config.agents);
      return answer(format, 200, encodeTraceResponse(format, partialSuccess([...decoded.rejected, ...outcome.rejected], outcome.warnings)));
    } catch (thrown) {
      const error = thrown instanceof OtlpRequestError ? thrown : storeUnavailable(thrown as Error);
      // A body cut off at the limit leaves the connection mid-request: the client must not reuse it.
      const headers = error.status === 413 ? { connection: "close" } : undefined;
      return answer(format ?? "json", error.status, encodeStatus(format ?? "json", error), headers);
    }
  });
};

/** OTLP exporters retry a 503: the request was rolled back, so a retry stores it once. */
function storeUnavailable(error: Error): OtlpRequestError {
  process.stderr.write(`agl server: POST /v1/traces: ${error.stack ?? error.message}\n`);
  return new OtlpRequestError(503, "The spans could not be stored, so nothing of this request was kept (see the server log); retry later.");
}

function answer(format: OtlpFormat, status: number, body: Uint8Array | string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { "content-type": MEDIA_TYPE[format], ...headers } });
}

function partialSuccess(rejected: string[], warnings: string[]): PartialSuccess | null {
  const problems = rejected.length > 0 ? rejected : warnings;
  if (problems.length === 0) return null;
  const more = problems.length > QUOTED_PROBLEMS ? ` (and ${problems.length - QUOTED_PROBLEMS} more)` : "";
  const kind = rejected.length > 0 ? `${rejected.length} span${rejected.length === 1 ? "" : "s"} rejected, the others stored` : "stored, with warnings";
  return { rejectedSpans: rejected.length, errorMessage: `${kind}: ${problems.slice(0, QUOTED_PROBLEMS).join("; ")}${more}` };
}

/**
 * The body, inflated if gzipped. The limit applies to the bytes on the wire and again to the inflated
 * bytes, which zlib stops producing at the limit: a small gzip bomb never becomes a large buffer.
 */
async function readBody(source: AsyncIterable<Uint8Array> | null, contentLength: string | undefined, contentEncoding: string | undefined, limit: number): Promise<Uint8Array> {
  const encoding = (contentEncoding ?? "identity").trim().toLowerCase() || "identity";
  if (encoding !== "identity" && encoding !== "gzip") {
    throw new OtlpRequestError(415, `Content-Encoding ${JSON.stringify(contentEncoding)} is not supported: send gzip or no Content-Encoding.`);
  }
  const tooLarge = (what: string) =>
    new OtlpRequestError(413, `The body ${what} more than ${limit} bytes, the limit of this server (server.maxBodyBytes, AGL_MAX_BODY_BYTES): export smaller batches.`);
  if (Number(contentLength ?? 0) > limit) throw tooLarge("has");
  const raw = await readLimited(source, limit, () => tooLarge("has"));
  if (encoding === "identity") return raw;
  try {
    return await inflate(raw, { maxOutputLength: limit });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge("decompresses to");
    throw new OtlpRequestError(400, `The body is not valid gzip (${(error as Error).message}); compress it with gzip or drop Content-Encoding.`);
  }
}

/**
 * Reading stops at the limit without closing the request: the 413 goes out with `connection: close`, and
 * @hono/node-server discards what is left of the body.
 */
async function readLimited(source: AsyncIterable<Uint8Array> | null, limit: number, tooLarge: () => OtlpRequestError): Promise<Uint8Array> {
  if (!source) return new Uint8Array();
  const chunks = source[Symbol.asyncIterator]();
  const read: Uint8Array[] = [];
  let size = 0;
  for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
    size += next.value.byteLength;
    if (size > limit) throw tooLarge();
    read.push(next.value);
  }
  return Buffer.concat(read);
}

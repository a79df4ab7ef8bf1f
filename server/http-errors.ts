import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { z } from "zod";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ConflictError, InvalidInputError, NotFoundError } from "../store/errors.ts";

/** An error a handler raises on purpose, with the status the client gets. */
export class HttpError extends Error {
  override name = "HttpError";
  readonly status: ContentfulStatusCode;
  readonly code: string;
  constructor(status: ContentfulStatusCode, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Every error leaves the server as `{"error": {"code", "message"}}` with a status that says whose fault it was. */
export function errorResponse(error: Error, context: Context): Response {
  if (error instanceof HttpError) return context.json({ error: { code: error.code, message: error.message } }, error.status);
  if (error instanceof NotFoundError) return context.json({ error: { code: "not_found", message: error.message } }, 404);
  if (error instanceof InvalidInputError) return context.json({ error: { code: "invalid_input", message: error.message } }, 400);
  if (error instanceof ConflictError) return context.json({ error: { code: "conflict", message: error.message } }, 409);
  process.stderr.write(`agl server: ${error.stack ?? error.message}\n`);
  return context.json({ error: { code: "internal", message: "internal error; see the server log" } }, 500);
}

/** Refuses a body over `maxSize` bytes with a 413 before the handler reads it; `tail` adds what the route promises. */
export function jsonBodyLimit(maxSize: number, tail = "") {
  return bodyLimit({
    maxSize,
    onError: (context) => context.json({ error: { code: "payload_too_large", message: `The request body is over ${maxSize} bytes.${tail}` } }, 413),
  });
}

/** How a route words a body it cannot use; the default is the write API's ("Nothing was written."). */
export interface BodyWording {
  malformedCode: string;
  invalidCode: string;
  heading: string;
  tail: string;
  maxProblems?: number;
}

const WRITE_API: BodyWording = { malformedCode: "malformed_json", invalidCode: "invalid_input", heading: "Invalid request body: ", tail: " Nothing was written." };

/** Parses and validates a JSON body, or answers 400 naming every problem (`path: message`). */
export function parseJsonBody<T>(body: string, schema: z.ZodType<T>, wording: BodyWording = WRITE_API): T {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (error) {
    throw new HttpError(400, wording.malformedCode, `The request body is not valid JSON (${(error as Error).message}).${wording.tail}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "body"}: ${issue.message}`);
    throw new HttpError(400, wording.invalidCode, `${wording.heading}${problems.slice(0, wording.maxProblems).join("; ")}.${wording.tail}`);
  }
  return parsed.data;
}

export async function readJson<T>(context: Context, schema: z.ZodType<T>): Promise<T> {
  return parseJsonBody(await context.req.text(), schema);
}

import type { Context } from "hono";
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

import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { diffPromptContent } from "../../agents/prompt-diff.ts";
import { validatePromptContent } from "../../agents/prompt-validation.ts";
import { assignArm } from "../../client/canary-assignment.ts";
import { CANARY, eventJson, LABEL_PATTERN, LABEL_RULE, missingLabelError, PRODUCTION, versionJson } from "../../store/resources.ts";
import type { RouteModule } from "../app.ts";
import { HttpError, jsonBodyLimit, readJson } from "../http-errors.ts";
import { type LabelledResource, type PreparedVersion, prepareVersion, ResourceSnapshot } from "../resource-snapshot.ts";

/** Request bodies of the resource routes: one prompt version is at most 48,000 characters, so this fits any valid one. */
export const RESOURCE_BODY_LIMIT_BYTES = 64 * 1024;

const versionNumber = z.coerce.number({ error: "must be a positive whole number" }).int("must be a positive whole number").min(1, "must be a positive whole number");
const labelName = z.string().regex(LABEL_PATTERN, `must be ${LABEL_RULE}`);
const actorName = z.string().trim().min(1).max(200);
const reasonText = z.string().max(2_000);
/** A user or session id: long enough for any id scheme, short enough to hash per request. */
const MAX_KEY_LENGTH = 200;

const labelMoveBody = z
  .object({
    version: z.number().int().min(1),
    /** Compare-and-set on the label's current version; `null`: the label must not exist yet. */
    expectedVersion: z.number().int().min(1).nullable().optional(),
    reason: reasonText.optional(),
    actor: actorName.optional(),
    rollback: z.boolean().optional(),
  })
  .strict()
  .refine((body) => !(body.rollback && body.expectedVersion === null), { message: "a rollback needs an existing label: expectedVersion cannot be null", path: ["expectedVersion"] });

const publishBody = z
  .object({
    content: z.unknown(),
    parentVersion: z.number().int().min(1).nullable().optional(),
    note: z.string().max(2_000).optional(),
    reason: reasonText.optional(),
    actor: actorName.optional(),
    metrics: z.record(z.string(), z.unknown()).optional(),
    labels: z.array(z.object({ label: labelName, expectedVersion: z.number().int().min(1).nullable() }).strict()).max(10).optional(),
  })
  .strict();

/** A comment line this often keeps proxies from closing an idle event stream. */
const KEEP_ALIVE_MS = 15_000;

/** Who a change made through the API is recorded as when the body names nobody. */
const API_ACTOR = "api";

/**
 * The resources API (README: "HTTP API"): read a prompt by label or version with a strong ETag, list,
 * history, diff, move labels (compare-and-set) and publish (validated). Agents poll it through
 * client/prompt-client.ts; the dashboard reads it too. Reads by label, what agents poll, are answered
 * from memory (server/resource-snapshot.ts) without a promise, a query or JSON encoding.
 */
export const resourceRoutes: RouteModule = (app, { store, config }) => {
  const resources = store.resources;
  const limitBody = jsonBodyLimit(RESOURCE_BODY_LIMIT_BYTES, " Nothing was written.");
  const snapshot = new ResourceSnapshot((name) => resources.labelled(name), store.resourceChanges);

  app.get("/v1/resources/:name", (context): Response | Promise<Response> => {
    const query = queryOf(context);
    const label = query?.get("label") ?? PRODUCTION;
    if (!LABEL_PATTERN.test(label)) parse(labelName, label, "query parameter label");
    const key = query?.get("key") ?? undefined;
    if (key !== undefined) {
      // Checked by hand: this is the hot path, and a schema would cost more than the rest of the answer.
      if (key.length === 0 || key.length > MAX_KEY_LENGTH) throw new HttpError(400, "invalid_input", `query parameter key must be 1-${MAX_KEY_LENGTH} characters, got ${key.length}.`);
      if (label !== PRODUCTION) throw new HttpError(400, "invalid_input", `query parameter key picks between production and its canary; it cannot be combined with label=${label}.`);
    }
    const found = snapshot.lookup(context.req.param("name"));
    const send = (resource: LabelledResource) => sendLabel(context, resource, key === undefined ? label : armLabel(resource, key));
    return found instanceof Promise ? found.then(send) : send(found);
  });

  // Server-sent events: `ready` once subscribed, then `changed` whenever the resource's versions or
  // labels change (or may have: after this server reconnects to the database). Clients re-read at once.
  app.get("/v1/resources/:name/events", (context) => {
    const name = context.req.param("name");
    return streamSSE(context, async (stream) => {
      let changed = false;
      let wake: (() => void) | undefined;
      const unsubscribe = store.resourceChanges.subscribe((change) => {
        if (change.kind === "resource" && change.name !== name) return;
        changed = true;
        wake?.();
      });
      stream.onAbort(() => wake?.());
      try {
        await stream.writeSSE({ event: "ready", data: JSON.stringify({ name }) });
        while (!stream.aborted && !stream.closed) {
          if (!changed) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, KEEP_ALIVE_MS);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            });
          }
          if (stream.aborted || stream.closed) break;
          if (changed) {
            changed = false;
            await stream.writeSSE({ event: "changed", data: JSON.stringify({ name }) });
          } else await stream.write(": keep-alive\n\n");
        }
      } finally {
        unsubscribe();
      }
    });
  });

  app.get("/v1/resources/:name/versions/:version", async (context) => {
    const version = parse(versionNumber, context.req.param("version"), "version");
    return sendPrepared(context, prepareVersion(await resources.getVersion(context.req.param("name"), version)));
  });

  app.get("/v1/resources/:name/versions", async (context) => {
    const name = context.req.param("name");
    const versions = await resources.listVersions(name);
    if (versions.length === 0) throw new HttpError(404, "not_found", `Resource "${name}" does not exist.`);
    return context.json({ name, versions: versions.map(versionJson) });
  });

  app.get("/v1/resources/:name/history", async (context) => {
    const name = context.req.param("name");
    const limit = parse(versionNumber.max(1_000, "must be at most 1000"), context.req.query("limit") ?? "200", "query parameter limit");
    const events = await resources.events(name, limit);
    return context.json({ name, events: events.map(eventJson) });
  });

  app.get("/v1/resources/:name/diff", async (context) => {
    const name = context.req.param("name");
    const from = parse(versionNumber, context.req.query("from") ?? "", "query parameter from");
    const to = parse(versionNumber, context.req.query("to") ?? "", "query parameter to");
    const [before, after] = await Promise.all([resources.getVersion(name, from), resources.getVersion(name, to)]);
    return context.json({ name, from, to, components: diffPromptContent(before.content, after.content) });
  });

  app.post("/v1/resources/:name/labels/:label", limitBody, async (context) => {
    const name = context.req.param("name");
    const label = parse(labelName, context.req.param("label"), "label");
    const body = await readJson(context, labelMoveBody);
    const actor = body.actor ?? API_ACTOR;
    const reason = body.reason ? { reason: body.reason } : {};
    const moved = body.rollback
      ? await resources.rollback({ name, label, toVersion: body.version, actor, ...reason, ...(body.expectedVersion ? { expectedVersion: body.expectedVersion } : {}) })
      : await resources.moveLabel({ name, label, toVersion: body.version, actor, ...reason, ...(body.expectedVersion !== undefined ? { expectedVersion: body.expectedVersion } : {}) });
    return context.json({ event: eventJson(moved.event), resource: versionJson(moved.resource) });
  });

  app.post("/v1/resources/:name/versions", limitBody, async (context) => {
    const name = context.req.param("name");
    const agent = config.agents.forResource(name);
    const body = await readJson(context, publishBody);
    const content = validatePromptContent(agent, body.content);
    if (body.parentVersion) await resources.getVersion(name, body.parentVersion);
    const actor = body.actor ?? API_ACTOR;
    const published = await resources.publish({
      name,
      content,
      parentVersion: body.parentVersion ?? null,
      createdBy: actor,
      ...(body.metrics ? { metrics: body.metrics } : {}),
      ...(body.note ? { note: body.note } : {}),
      ...(body.reason ? { reason: body.reason } : {}),
      ...(body.labels ? { labels: body.labels } : {}),
    });
    const prepared = prepareVersion(published);
    return new Response(prepared.body, {
      status: 201,
      headers: { ...prepared.fullHeaders, location: `/v1/resources/${encodeURIComponent(name)}/versions/${published.version}` },
    });
  });
};

/** The label serving `key`: `canary` for the keys the split assigns to it, else `production`. */
function armLabel(resource: LabelledResource, key: string): string {
  return assignArm(resource.name, resource.canary, key) === "canary" && resource.labels.has(CANARY) ? CANARY : PRODUCTION;
}

function sendLabel(context: Context, resource: LabelledResource, label: string): Response {
  const prepared = resource.labels.get(label);
  if (!prepared) throw missingLabelError(resource.name, label, [...resource.labelNames]);
  return sendPrepared(context, prepared);
}

/** Built from the prepared headers as they are: @hono/node-server writes such a response straight to the socket. */
function sendPrepared(context: Context, prepared: PreparedVersion): Response {
  if (ifNoneMatch(ifNoneMatchHeader(context), prepared.etag)) return new Response(null, { status: 304, headers: prepared.notModifiedHeaders });
  return new Response(prepared.body, { headers: prepared.fullHeaders });
}

/** The query string, parsed once (none: undefined), from Node's own request when @hono/node-server serves. */
function queryOf(context: Context): URLSearchParams | undefined {
  const incoming = (context.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const url = incoming?.url ?? context.req.url;
  const at = url.indexOf("?");
  return at < 0 ? undefined : new URLSearchParams(url.slice(at + 1));
}

/** From Node's own request when @hono/node-server serves: building the fetch API's Headers would cost more than the rest of the answer. */
function ifNoneMatchHeader(context: Context): string | undefined {
  const incoming = (context.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  return incoming ? incoming.headers["if-none-match"] : context.req.header("if-none-match");
}

/** RFC 9110: If-None-Match compares weakly and may list several tags or `*`. */
function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header === etag) return true;
  return header.split(",").some((tag) => {
    const candidate = tag.trim();
    return candidate === "*" || candidate.replace(/^W\//, "") === etag;
  });
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, "invalid_input", `${what} ${parsed.error.issues[0]?.message ?? "is invalid"}, got ${JSON.stringify(value)}.`);
  return parsed.data;
}



import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import { z } from "zod";
import { diffPromptContent } from "../../agents/prompt-diff.ts";
import { validatePromptContent } from "../../agents/prompt-validation.ts";
import { eventJson, LABEL_PATTERN, LABEL_RULE, missingLabelError, PRODUCTION, versionJson } from "../../store/resources.ts";
import type { RouteModule } from "../app.ts";
import { HttpError, jsonBodyLimit, readJson } from "../http-errors.ts";
import { type LabelledResource, type PreparedVersion, prepareVersion, ResourceSnapshot } from "../resource-snapshot.ts";

/** Request bodies of the resource routes: one prompt version is at most 48,000 characters, so this fits any valid one. */
export const RESOURCE_BODY_LIMIT_BYTES = 64 * 1024;

const versionNumber = z.coerce.number({ error: "must be a positive whole number" }).int("must be a positive whole number").min(1, "must be a positive whole number");
const labelName = z.string().regex(LABEL_PATTERN, `must be ${LABEL_RULE}`);
const actorName = z.string().trim().min(1).max(200);
const reasonText = z.string().max(2_000);

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
    const label = context.req.query("label") ?? PRODUCTION;
    if (!LABEL_PATTERN.test(label)) parse(labelName, label, "query parameter label");
    const found = snapshot.lookup(context.req.param("name"));
    return found instanceof Promise ? found.then((resource) => sendLabel(context, resource, label)) : sendLabel(context, found, label);
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



import { createHmac, timingSafeEqual } from "node:crypto";
import type { WebhookEventKind } from "../config/schema.ts";
import type { ResourceEvent } from "../store/resources.ts";
import type { ResourceEventKind } from "../store/schema.ts";

/**
 * Signed change events, in the Standard Webhooks format (standardwebhooks.com): a receiver verifies them
 * with any of its libraries, or by hand:
 * - `webhook-id`: the event's stable id (`evt_<n>`), the same on every retry: drop ids already handled;
 * - `webhook-timestamp`: when this attempt was signed, in seconds since the epoch: refuse ones too far
 *   from now (5 minutes), so a captured request cannot be replayed later;
 * - `webhook-signature`: `v1,` and the base64 HMAC-SHA256, keyed with the secret's UTF-8 bytes, of
 *   `<id>.<timestamp>.<body>`: compare it in constant time.
 */
export const WEBHOOK_HEADERS = { id: "webhook-id", timestamp: "webhook-timestamp", signature: "webhook-signature" } as const;
export const WEBHOOK_TOLERANCE_SECONDS = 300;

const KINDS: Record<ResourceEventKind, WebhookEventKind> = {
  published: "published",
  labelled: "labelled",
  rolled_back: "rolled_back",
  canary_started: "canary.started",
  canary_promoted: "canary.promoted",
  canary_rolled_back: "canary.rolled_back",
};

export function webhookEventKind(kind: ResourceEventKind): WebhookEventKind {
  return KINDS[kind];
}

export function webhookEventId(eventId: number): string {
  return `evt_${eventId}`;
}

/** The body: `{id, type, timestamp, data}` with the audit event in `data`. */
export function webhookBody(event: ResourceEvent): string {
  return JSON.stringify({
    id: webhookEventId(event.id),
    type: webhookEventKind(event.kind),
    timestamp: event.createdAt.toISOString(),
    data: {
      resource: event.name,
      label: event.label,
      fromVersion: event.fromVersion,
      toVersion: event.toVersion,
      actor: event.actor,
      reason: event.reason,
    },
  });
}

export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac("sha256", secret).update(`${id}.${timestampSeconds}.${body}`).digest("base64")}`;
}

export class WebhookVerificationError extends Error {
  override name = "WebhookVerificationError";
}

/**
 * For receivers written in TypeScript: throws WebhookVerificationError unless the request carries a
 * valid signature of this body by `secret`, signed within the tolerance of `nowSeconds`.
 */
export function verifyWebhook(options: { secret: string; headers: Record<string, string | string[] | undefined>; body: string; nowSeconds?: number; toleranceSeconds?: number }): { id: string } {
  const header = (name: string) => {
    const value = options.headers[name];
    if (typeof value !== "string" || value === "") throw new WebhookVerificationError(`missing header ${name}`);
    return value;
  };
  const id = header(WEBHOOK_HEADERS.id);
  const timestamp = header(WEBHOOK_HEADERS.timestamp);
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError(`${WEBHOOK_HEADERS.timestamp} is not a number of seconds`);
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > (options.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS)) throw new WebhookVerificationError("the timestamp is too far from now: a replay, or a clock that is off");
  const expected = Buffer.from(signWebhook(options.secret, id, Number(timestamp), options.body));
  const matches = header(WEBHOOK_HEADERS.signature)
    .split(" ")
    .some((candidate) => {
      const given = Buffer.from(candidate);
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
  if (!matches) throw new WebhookVerificationError("no signature matches the body and the secret");
  return { id };
}

/** One delivery attempt: the event signed now, POSTed with a time limit. Resolves with the receiver's status. */
export async function postWebhook(url: string, secret: string, event: ResourceEvent, timeoutMs: number): Promise<number> {
  const body = webhookBody(event);
  const id = webhookEventId(event.id);
  const timestamp = Math.floor(Date.now() / 1000);
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "user-agent": "agl-webhooks",
      [WEBHOOK_HEADERS.id]: id,
      [WEBHOOK_HEADERS.timestamp]: String(timestamp),
      [WEBHOOK_HEADERS.signature]: signWebhook(secret, id, timestamp, body),
    },
    body,
    redirect: "manual",
    signal: AbortSignal.timeout(timeoutMs),
  });
  await response.body?.cancel().catch(() => undefined);
  return response.status;
}

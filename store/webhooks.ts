import type { Kysely, Selectable } from "kysely";
import { NotFoundError } from "./errors.ts";
import { type ResourceEvent, toEvent } from "./resources.ts";
import type { Database, WebhookDeliveriesTable } from "./schema.ts";

export interface WebhookDelivery {
  eventId: number;
  url: string;
  kind: string;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
  createdAt: Date;
}

/** The outbox of audit events (filled by a trigger as they commit) and the state of each delivery. */
export function webhooksStore(db: Kysely<Database>) {
  /** The oldest audit events not yet handed to the dispatcher. */
  async function pendingEvents(limit: number): Promise<ResourceEvent[]> {
    const rows = await db
      .selectFrom("webhook_outbox as o")
      .innerJoin("resource_events as e", "e.id", "o.event_id")
      .selectAll("e")
      .orderBy("o.event_id")
      .limit(limit)
      .execute();
    return rows.map(toEvent);
  }

  /** Records the deliveries an event owes: idempotent per event and receiver, so dispatchers racing (or retrying) add each once. */
  async function addDeliveries(eventId: number, deliveries: { url: string; kind: string }[]): Promise<void> {
    if (deliveries.length === 0) return;
    await db
      .insertInto("webhook_deliveries")
      .values(deliveries.map((delivery) => ({ event_id: eventId, url: delivery.url, kind: delivery.kind, status: "pending" as const })))
      .onConflict((oc) => oc.columns(["event_id", "url"]).doNothing())
      .execute();
  }

  /** Takes an event out of the outbox, once its deliveries are recorded and under way. */
  async function clearOutbox(eventId: number): Promise<void> {
    await db.deleteFrom("webhook_outbox").where("event_id", "=", eventId).execute();
  }

  async function event(id: number): Promise<ResourceEvent> {
    const row = await db.selectFrom("resource_events").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new NotFoundError(`Audit event ${id} does not exist.`);
    return toEvent(row);
  }

  async function recordAttempt(input: { eventId: number; url: string; attempt: number; status: number | null; error: string | null; delivered: boolean; nextAttemptAt: Date | null }): Promise<void> {
    await db
      .updateTable("webhook_deliveries")
      .set({
        attempts: input.attempt,
        last_status: input.status,
        last_error: input.error,
        next_attempt_at: input.nextAttemptAt,
        ...(input.delivered ? { status: "delivered" as const, delivered_at: new Date() } : {}),
      })
      .where("event_id", "=", input.eventId)
      .where("url", "=", input.url)
      .where("status", "=", "pending")
      .execute();
  }

  async function markFailed(eventId: number, url: string, error: string): Promise<void> {
    await db
      .updateTable("webhook_deliveries")
      .set({ status: "failed", last_error: error, next_attempt_at: null })
      .where("event_id", "=", eventId)
      .where("url", "=", url)
      .where("status", "=", "pending")
      .execute();
  }

  /** Newest first. */
  async function deliveries(filter: { limit: number; eventId?: number }): Promise<WebhookDelivery[]> {
    let query = db.selectFrom("webhook_deliveries").selectAll();
    if (filter.eventId !== undefined) query = query.where("event_id", "=", filter.eventId);
    const rows = await query.orderBy("event_id", "desc").orderBy("url").limit(filter.limit).execute();
    return rows.map(toDelivery);
  }

  return { pendingEvents, addDeliveries, clearOutbox, event, recordAttempt, markFailed, deliveries };
}

function toDelivery(row: Selectable<WebhookDeliveriesTable>): WebhookDelivery {
  return {
    eventId: row.event_id,
    url: row.url,
    kind: row.kind,
    status: row.status,
    attempts: row.attempts,
    lastStatus: row.last_status,
    lastError: row.last_error,
    nextAttemptAt: row.next_attempt_at,
    deliveredAt: row.delivered_at,
    createdAt: row.created_at,
  };
}

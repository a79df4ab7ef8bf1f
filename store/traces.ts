import type { Kysely, Selectable } from "kysely";
import { type NewRollout, type Reward, rolloutsStore } from "./rollouts.ts";
import type { Database, SpansTable } from "./schema.ts";

export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [key: string]: AttributeValue };

export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  name: string;
  kind: number;
  start: Date;
  end: Date;
  statusCode: number;
  statusMessage: string | null;
  attributes: Record<string, AttributeValue>;
  resource: Record<string, AttributeValue>;
  scope: string | null;
  rolloutId: string | null;
}

/** What one OTLP request writes: its spans, earlier spans that now belong to a rollout, and the rollouts and rewards derived from them. */
export interface SpanIngestPlan {
  spans: SpanRecord[];
  links: { traceId: string; spanId: string; rolloutId: string }[];
  rollouts: NewRollout[];
  rewards: Omit<Reward, "createdAt">[];
}

export interface IngestCounts {
  spans: number;
  rollouts: number;
  rewards: number;
}

const CHUNK = 250;

export function tracesStore(db: Kysely<Database>) {
  /**
   * One request, one transaction: reads the spans stored earlier that the new ones may connect to (same
   * traces, same rollouts), lets `plan` derive what to write, and writes it all or nothing. Idempotent:
   * spans on (trace, span), rollouts on their id, rewards on (rollout, scorer, dedupe key). A reward whose
   * rollout does not exist yet waits in its span until the rollout's spans arrive.
   */
  async function ingest<Plan extends SpanIngestPlan>(
    context: { traceIds: readonly string[]; rolloutIds: readonly string[] },
    plan: (stored: SpanRecord[]) => Plan,
  ): Promise<{ plan: Plan; written: IngestCounts }> {
    return db.transaction().execute(async (trx) => {
      const stored = await storedSpans(trx, context);
      const result = plan(stored);
      let spans = 0;
      for (const chunk of chunks(result.spans)) {
        const inserted = await trx
          .insertInto("spans")
          .values(chunk.map(toRow))
          .onConflict((oc) => oc.columns(["trace_id", "span_id"]).doNothing())
          .executeTakeFirst();
        spans += Number(inserted.numInsertedOrUpdatedRows ?? 0n);
      }
      for (const links of Map.groupBy(result.links, (link) => `${link.rolloutId}\u0000${link.traceId}`).values()) {
        await trx
          .updateTable("spans")
          .set({ rollout_id: links[0]!.rolloutId })
          .where("trace_id", "=", links[0]!.traceId)
          .where(
            "span_id",
            "in",
            links.map((link) => link.spanId),
          )
          .where("rollout_id", "is", null)
          .execute();
      }
      const rollouts = rolloutsStore(trx);
      const created = await rollouts.insertMany(result.rollouts);
      const planned = new Set(result.rollouts.map((rollout) => rollout.id));
      const existing = await rollouts.existingIds([...new Set(result.rewards.map((reward) => reward.rolloutId).filter((id) => !planned.has(id)))]);
      const rewards = await rollouts.addRewards(result.rewards.filter((reward) => planned.has(reward.rolloutId) || existing.has(reward.rolloutId)));
      return { plan: result, written: { spans, rollouts: created, rewards } };
    });
  }

  async function storedSpans(executor: Kysely<Database>, context: { traceIds: readonly string[]; rolloutIds: readonly string[] }): Promise<SpanRecord[]> {
    const rows = new Map<string, Selectable<SpansTable>>();
    for (const traceIds of chunks(context.traceIds)) {
      for (const row of await executor.selectFrom("spans").selectAll().where("trace_id", "in", traceIds).execute()) rows.set(`${row.trace_id}/${row.span_id}`, row);
    }
    for (const rolloutIds of chunks(context.rolloutIds)) {
      for (const row of await executor.selectFrom("spans").selectAll().where("rollout_id", "in", rolloutIds).execute()) rows.set(`${row.trace_id}/${row.span_id}`, row);
    }
    return [...rows.values()].map(fromRow);
  }

  async function spansOfTrace(traceId: string): Promise<SpanRecord[]> {
    return (await db.selectFrom("spans").selectAll().where("trace_id", "=", traceId).orderBy("start_time").orderBy("span_id").execute()).map(fromRow);
  }

  async function spansOfRollout(rolloutId: string): Promise<SpanRecord[]> {
    return (await db.selectFrom("spans").selectAll().where("rollout_id", "=", rolloutId).orderBy("start_time").orderBy("span_id").execute()).map(fromRow);
  }

  /** How much OTLP traffic is stored: spans, and the rollouts made from them. */
  async function totals(): Promise<{ spans: number; rollouts: number }> {
    const spans = await db.selectFrom("spans").select((eb) => eb.fn.countAll<number>().as("count")).executeTakeFirst();
    const rollouts = await db
      .selectFrom("rollouts")
      .select((eb) => eb.fn.countAll<number>().as("count"))
      .where("source", "=", "otlp")
      .executeTakeFirst();
    return { spans: Number(spans?.count ?? 0), rollouts: Number(rollouts?.count ?? 0) };
  }

  return { ingest, spansOfTrace, spansOfRollout, totals };
}

function* chunks<T>(items: readonly T[]): Generator<T[]> {
  for (let start = 0; start < items.length; start += CHUNK) yield items.slice(start, start + CHUNK);
}

function toRow(span: SpanRecord) {
  return {
    trace_id: span.traceId,
    span_id: span.spanId,
    parent_span_id: span.parentSpanId,
    name: span.name,
    kind: span.kind,
    start_time: span.start,
    end_time: span.end,
    status_code: span.statusCode,
    status_message: span.statusMessage,
    attributes: JSON.stringify(span.attributes),
    resource: JSON.stringify(span.resource),
    scope: span.scope,
    rollout_id: span.rolloutId,
  };
}

function fromRow(row: Selectable<SpansTable>): SpanRecord {
  return {
    traceId: row.trace_id,
    spanId: row.span_id,
    parentSpanId: row.parent_span_id,
    name: row.name,
    kind: row.kind,
    start: row.start_time,
    end: row.end_time,
    statusCode: row.status_code,
    statusMessage: row.status_message,
    attributes: row.attributes as Record<string, AttributeValue>,
    resource: row.resource as Record<string, AttributeValue>,
    scope: row.scope,
    rolloutId: row.rollout_id,
  };
}

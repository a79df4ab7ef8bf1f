import { createHash } from "node:crypto";
import type { Kysely, Selectable } from "kysely";
import type pg from "pg";
import { type NewRollout, type Reward, rolloutRow } from "./rollouts.ts";
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

/**
 * What one ingest writes: its new spans, earlier spans that now belong to a rollout, every rollout the new
 * spans touched (rebuilt whole from all of its spans), and the rewards of those rollouts.
 */
export interface SpanIngestPlan {
  spans: SpanRecord[];
  links: { traceId: string; spanId: string; rolloutId: string }[];
  rollouts: NewRollout[];
  rewards: Omit<Reward, "createdAt">[];
  /** Rollouts the plan rebuilds whose stored spans it may not have seen: read them, then plan again. */
  unreadRollouts: string[];
}

export interface IngestCounts {
  spans: number;
  links: number;
  /** Rollouts created or changed; a rebuild that changes nothing writes nothing. */
  rollouts: number;
  rewards: number;
}

/** What an ingest may connect to: the traces of its spans and the Agent Lightning rollouts they name. */
export interface IngestContext {
  traceIds: readonly string[];
  rolloutIds: readonly string[];
}

/**
 * Rows up to this size (JSON characters) travel as literals, so the write and COMMIT go in one round trip;
 * larger ones as parameters, which PostgreSQL reads faster than it scans a long literal (12 ms less for 1.9 MB).
 */
const MAX_INLINE_ROWS_CHARS = 65_536;

/** Ingest transactions run at once on PostgreSQL: more would mostly wait on each other's locks and the pool. */
const POSTGRES_CONCURRENT_INGESTS = 2;

export function tracesStore(db: Kysely<Database>, pool: pg.Pool) {
  /**
   * One transaction: locks the traces and rollouts the new spans name (so concurrent ingests of the
   * same trace, in this process or another, run one after the other), reads the spans stored before that
   * they may connect to, lets `plan` derive what to write, and writes it all or nothing in one statement (a call
   * of `agl_otlp_ingest_write`, whose plans the database session keeps).
   * Idempotent: spans on (trace, span), rollouts on their id (replaced by the rebuilt version, only when it
   * differs), rewards on (rollout, scorer, dedupe key). Two round trips (README, "Benchmarks → OTLP
   * ingest"): BEGIN, the locks and the read go together, then the write and COMMIT, each one simple-protocol
   * query of several statements with the values as literals (`literal`); a statement that fails skips the
   * rest of its query, COMMIT included, and the transaction is rolled back. A large write goes alone with
   * its rows as parameters, then COMMIT: three round trips.
   */
  async function ingest<Plan extends SpanIngestPlan>(context: IngestContext, plan: (stored: SpanRecord[], readRollouts: ReadonlySet<string>) => Plan): Promise<{ plan: Plan; written: IngestCounts }> {
    const lockKeys = [...context.traceIds.map((id) => `trace ${id}`), ...context.rolloutIds.map((id) => `rollout ${id}`)];
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      const stored = lastRows(await client.query(`BEGIN; ${advisoryLocks(lockKeys)}; ${storedSpansQuery(context)}`)).map(fromRow);
      const read = new Set(context.rolloutIds);
      let result = plan(stored, read);
      // A span may join a rollout that none of the new spans names (it inherits it from a stored parent):
      // that rollout's other spans, in other traces maybe, are read too before it is rebuilt. Its lock comes
      // out of the sorted order; in the rare deadlock that allows, PostgreSQL aborts one of the two ingests,
      // which answers 503, and its exporter sends it again.
      while (result.unreadRollouts.some((id) => !read.has(id))) {
        const more = result.unreadRollouts.filter((id) => !read.has(id));
        for (const id of more) read.add(id);
        const known = new Set(stored.map((span) => `${span.traceId}/${span.spanId}`));
        const rows = lastRows(await client.query(`${advisoryLocks(more.map((id) => `rollout ${id}`))}; ${storedSpansQuery({ traceIds: [], rolloutIds: more })}`));
        stored.push(...rows.map(fromRow).filter((span) => !known.has(`${span.traceId}/${span.spanId}`)));
        result = plan(stored, read);
      }
      const write = writeQuery(result);
      let written: IngestCounts = { spans: 0, links: 0, rollouts: 0, rewards: 0 };
      if (!write) await client.query("COMMIT");
      else if (write.values.length === 0) written = lastRows<IngestCounts>(await client.query(`${write.text}; COMMIT`), 0)[0]!;
      else {
        written = (await client.query<IngestCounts>(write.text, write.values)).rows[0]!;
        await client.query("COMMIT");
      }
      return { plan: result, written };
    } catch (error) {
      await client.query("ROLLBACK").catch((rollbackError: Error) => (broken = rollbackError));
      throw error;
    } finally {
      // A connection that could not even roll back is closed rather than handed to the next caller.
      client.release(broken);
    }
  }

  let ingestSlots: Promise<number> | undefined;
  /**
   * How many ingests are worth running at once: one on PGlite, whose single session runs one transaction at a
   * time whatever the number of connections; two on PostgreSQL, where one transaction's work on the server
   * then overlaps the next one's planning here and the server's other core is used (README, "Benchmarks →
   * OTLP ingest"). One when the server cannot be asked; asked again next time.
   */
  function concurrentIngests(): Promise<number> {
    ingestSlots ??= pool.query<{ version: string }>("SELECT version()").then(
      ({ rows }) => (rows[0]!.version.includes("PGlite") ? 1 : POSTGRES_CONCURRENT_INGESTS),
      () => {
        ingestSlots = undefined;
        return 1;
      },
    );
    return ingestSlots;
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

  return { ingest, concurrentIngests, spansOfTrace, spansOfRollout, totals };
}

/**
 * Transaction-scoped advisory locks, taken in one sorted order so two ingests never wait on each other in a
 * cycle. The keys are 64-bit hashes written as integer literals, so the statement has no parameters and can
 * travel with BEGIN in one simple-protocol round trip. A hash collision only makes two unrelated ingests
 * take turns.
 */
function advisoryLocks(keys: readonly string[]): string {
  const hashes = [...new Set(keys.map((key) => createHash("sha256").update(`agl otlp ${key}`).digest().readBigInt64BE(0)))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return `SELECT count(pg_advisory_xact_lock(lock_key)) FROM unnest('{${hashes.join(",")}}'::bigint[]) AS lock_key`;
}

/** The stored spans of the traces, and of the rollouts, as one statement with its values as literals. */
function storedSpansQuery(context: IngestContext): string {
  return `SELECT * FROM spans WHERE trace_id = any(${literal(textArray(context.traceIds))}::text[]) OR rollout_id = any(${literal(textArray(context.rolloutIds))}::text[])`;
}

/** The rows of one statement (the last by default) of a simple-protocol query: pg answers a list when there were several. */
function lastRows<Row = Selectable<SpansTable>>(result: pg.QueryResult | pg.QueryResult[], statement = -1): Row[] {
  return (Array.isArray(result) ? result.at(statement)! : result).rows as Row[];
}

/** A PostgreSQL array literal of texts: every element double-quoted, its quotes and backslashes escaped. */
function textArray(values: readonly string[]): string {
  return `{${values.map((value) => `"${value.replace(/["\\]/g, "\\$&")}"`).join(",")}}`;
}

/**
 * A string literal, dollar-quoted with a tag the text does not contain, so nothing in it needs escaping and the
 * server's standard_conforming_strings does not matter. A NUL would end the query text early; PostgreSQL text
 * cannot hold one anyway, so it is refused here.
 */
export function literal(text: string): string {
  if (text.includes("\0")) throw new Error("A value to store contains a NUL character, which PostgreSQL text cannot hold.");
  let tag = "$agl$";
  for (let attempt = 0; text.includes(tag); attempt++) tag = `$agl${attempt}$`;
  return `${tag}${text}${tag}`;
}

/**
 * The whole plan as one call of `agl_otlp_ingest_write` (migration 0009, whose statements keep their plans
 * for the session), or null when there is nothing to write: each table's rows travel as one JSON value,
 * inline up to MAX_INLINE_ROWS_CHARS, NULL for a table with nothing to write.
 */
function writeQuery(plan: SpanIngestPlan): { text: string; values: string[] } | null {
  const rows = [
    plan.spans.length > 0 ? JSON.stringify(plan.spans.map(spanRow)) : null,
    plan.links.length > 0 ? JSON.stringify(plan.links.map((link) => ({ trace_id: link.traceId, span_id: link.spanId, rollout_id: link.rolloutId }))) : null,
    plan.rollouts.length > 0 ? JSON.stringify(plan.rollouts.map(rolloutRow)) : null,
    plan.rewards.length > 0 ? JSON.stringify(plan.rewards.map(rewardRow)) : null,
  ];
  if (rows.every((table) => table === null)) return null;
  const inline = rows.reduce((total, table) => total + (table?.length ?? 0), 0) <= MAX_INLINE_ROWS_CHARS;
  const values: string[] = [];
  const args = rows.map((table) => {
    if (table === null) return "NULL";
    if (inline) return literal(table);
    values.push(table);
    return `$${values.length}`;
  });
  return {
    text: `SELECT spans_written AS spans, links_written AS links, rollouts_written AS rollouts, rewards_written AS rewards FROM agl_otlp_ingest_write(${args.map((arg) => `${arg}::jsonb`).join(", ")})`,
    values,
  };
}

function rewardRow(reward: Omit<Reward, "createdAt">) {
  return { rollout_id: reward.rolloutId, scorer: reward.scorer, value: reward.value, reason: reward.reason, details: reward.details, dedupe_key: reward.dedupeKey };
}

function spanRow(span: SpanRecord) {
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
    attributes: span.attributes,
    resource: span.resource,
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

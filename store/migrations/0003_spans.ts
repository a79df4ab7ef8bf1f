import { type Kysely, sql } from "kysely";

/** Every span received over OTLP, idempotent on (trace_id, span_id); `rollout_id` links it to the rollout it became part of. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE spans (
      trace_id text NOT NULL,
      span_id text NOT NULL,
      parent_span_id text,
      name text NOT NULL,
      kind smallint NOT NULL,
      start_time timestamptz NOT NULL,
      end_time timestamptz NOT NULL,
      status_code smallint NOT NULL,
      status_message text,
      attributes jsonb NOT NULL,
      resource jsonb NOT NULL,
      scope text,
      rollout_id text,
      received_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (trace_id, span_id)
    );
    CREATE INDEX spans_by_rollout ON spans (rollout_id) WHERE rollout_id IS NOT NULL;
  `.execute(db);
}

import { type Kysely, sql } from "kysely";

/** Proxy outcomes posted with a trace id find their rollouts by it (POST /v1/outcomes). */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX rollouts_by_trace ON rollouts (trace_id) WHERE trace_id IS NOT NULL`.execute(db);
}

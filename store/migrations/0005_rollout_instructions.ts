import { type Kysely, sql } from "kysely";

/** The system instructions a rollout ran with, when it arrived with them (OTLP traces); cycle and queue rollouts name their prompt version instead. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE rollouts ADD COLUMN instructions text`.execute(db);
}

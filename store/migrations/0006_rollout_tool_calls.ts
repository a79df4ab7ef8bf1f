import { type Kysely, sql } from "kysely";

/** The tools an agent called during a rollout, with arguments and results: agents with tools are scored and optimized on what they did, not only on what they answered. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE rollouts ADD COLUMN tool_calls jsonb`.execute(db);
}

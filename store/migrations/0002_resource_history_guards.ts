import { type Kysely, sql } from "kysely";

/**
 * Published versions and the audit trail are append-only by contract; the triggers make the database
 * refuse an UPDATE or DELETE too, so no code path (or hand-written SQL) can rewrite history. A label
 * move may carry an idempotency key, so a retried rollback activity lands once.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE resource_events ADD COLUMN idempotency_key text UNIQUE;
    ALTER TABLE resource_events ADD CONSTRAINT resource_events_kind CHECK (kind IN ('published', 'labelled', 'rolled_back'));
    CREATE FUNCTION agl_refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '% rows are append-only: publish a new version or move a label instead', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
    END;
    $$;
    CREATE TRIGGER resource_versions_append_only BEFORE UPDATE OR DELETE ON resource_versions
      FOR EACH ROW EXECUTE FUNCTION agl_refuse_history_change();
    CREATE TRIGGER resource_events_append_only BEFORE UPDATE OR DELETE ON resource_events
      FOR EACH ROW EXECUTE FUNCTION agl_refuse_history_change();
  `.execute(db);
}

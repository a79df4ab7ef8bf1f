import { type Kysely, sql } from "kysely";

/**
 * What keeps in-memory copies of prompt resources honest (store/resource-changes.ts):
 * - triggers notify `agl_resource_changes` with `{"name": …}` on every publish and label move, inside the
 *   writing transaction, so the notification is delivered exactly when the change commits, whoever wrote it
 *   (the store, a cycle's deploy, hand-written SQL);
 * - processes serving copies register in `resource_cache_subscribers` with a lease and acknowledge barriers
 *   numbered by `resource_change_barriers`, so a writer can wait until every one of them dropped its copy.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE FUNCTION agl_notify_resource_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('agl_resource_changes', json_build_object('name', CASE TG_OP WHEN 'DELETE' THEN OLD.name ELSE NEW.name END)::text);
      RETURN NULL;
    END;
    $$;
    CREATE TRIGGER resource_versions_notify AFTER INSERT ON resource_versions
      FOR EACH ROW EXECUTE FUNCTION agl_notify_resource_change();
    CREATE TRIGGER resource_labels_notify AFTER INSERT OR UPDATE OR DELETE ON resource_labels
      FOR EACH ROW EXECUTE FUNCTION agl_notify_resource_change();

    CREATE SEQUENCE resource_change_barriers;
    CREATE TABLE resource_cache_subscribers (
      id text PRIMARY KEY,
      acked_barrier bigint NOT NULL DEFAULT 0,
      expires_at timestamptz NOT NULL
    );
  `.execute(db);
}

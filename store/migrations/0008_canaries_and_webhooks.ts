import { type Kysely, sql } from "kysely";

/**
 * Safe rollouts:
 * - a label may carry a traffic weight (the `canary` label: the share of keyed traffic it serves);
 * - `canaries` holds each canary and its guard's last look; at most one runs per resource, which the
 *   database enforces, so two starts racing cannot both win;
 * - rollouts record the arm that served them (`production` or `canary`);
 * - the audit trail gains the canary's three events;
 * - every audit event lands in `webhook_outbox` in the transaction that wrote it, so no committed change
 *   goes unannounced, whoever wrote it; `webhook_deliveries` tracks each (event, receiver).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE resource_labels ADD COLUMN weight double precision CHECK (weight IS NULL OR (weight > 0 AND weight <= 100));
    ALTER TABLE rollouts ADD COLUMN arm text;
    CREATE INDEX rollouts_by_arm ON rollouts (agent, arm, created_at) WHERE arm IS NOT NULL;

    ALTER TABLE resource_events DROP CONSTRAINT resource_events_kind;
    ALTER TABLE resource_events ADD CONSTRAINT resource_events_kind
      CHECK (kind IN ('published', 'labelled', 'rolled_back', 'canary_started', 'canary_promoted', 'canary_rolled_back'));

    CREATE TABLE canaries (
      id text PRIMARY KEY,
      agent text NOT NULL,
      resource text NOT NULL,
      baseline_version integer NOT NULL,
      canary_version integer NOT NULL,
      weight double precision NOT NULL,
      status text NOT NULL CHECK (status IN ('running', 'promoted', 'rolled_back')),
      settings jsonb NOT NULL,
      state jsonb NOT NULL DEFAULT '{}'::jsonb,
      started_by text NOT NULL,
      started_at timestamptz NOT NULL DEFAULT now(),
      decided_by text,
      decision_reason text,
      decided_at timestamptz
    );
    CREATE UNIQUE INDEX canaries_one_running ON canaries (resource) WHERE status = 'running';
    CREATE INDEX canaries_by_agent ON canaries (agent, started_at);

    CREATE TABLE webhook_outbox (event_id bigint PRIMARY KEY);
    CREATE FUNCTION agl_queue_webhook_event() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO webhook_outbox (event_id) VALUES (NEW.id);
      RETURN NULL;
    END;
    $$;
    CREATE TRIGGER resource_events_outbox AFTER INSERT ON resource_events
      FOR EACH ROW EXECUTE FUNCTION agl_queue_webhook_event();

    CREATE TABLE webhook_deliveries (
      event_id bigint NOT NULL,
      url text NOT NULL,
      kind text NOT NULL,
      status text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
      attempts integer NOT NULL DEFAULT 0,
      last_status integer,
      last_error text,
      next_attempt_at timestamptz,
      delivered_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (event_id, url)
    );
    CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (created_at);
  `.execute(db);
}

import { type Kysely, sql } from "kysely";

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE resource_versions (
      name text NOT NULL,
      version integer NOT NULL CHECK (version > 0),
      content jsonb NOT NULL,
      parent_version integer,
      created_by text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      metrics jsonb NOT NULL DEFAULT '{}'::jsonb,
      note text,
      idempotency_key text UNIQUE,
      PRIMARY KEY (name, version)
    );
    CREATE TABLE resource_labels (
      name text NOT NULL,
      label text NOT NULL,
      version integer NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      updated_by text NOT NULL,
      PRIMARY KEY (name, label),
      FOREIGN KEY (name, version) REFERENCES resource_versions (name, version)
    );
    CREATE TABLE resource_events (
      id bigserial PRIMARY KEY,
      name text NOT NULL,
      kind text NOT NULL,
      label text,
      from_version integer,
      to_version integer,
      actor text NOT NULL,
      reason text,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX resource_events_by_name ON resource_events (name, id);

    CREATE TABLE datasets (
      name text PRIMARY KEY,
      agent text NOT NULL,
      source text NOT NULL,
      task_count integer NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE tasks (
      dataset text NOT NULL REFERENCES datasets (name) ON DELETE CASCADE,
      id text NOT NULL,
      position integer NOT NULL,
      input jsonb NOT NULL,
      expected jsonb,
      split text NOT NULL CHECK (split IN ('train', 'validation', 'test')),
      PRIMARY KEY (dataset, id)
    );
    CREATE INDEX tasks_by_split ON tasks (dataset, split, position);

    CREATE TABLE rollouts (
      id text PRIMARY KEY,
      agent text NOT NULL,
      source text NOT NULL CHECK (source IN ('queue', 'otlp')),
      dataset text,
      task_id text,
      resource_name text NOT NULL,
      resource_version integer,
      candidate_id text,
      cycle_id text,
      phase text,
      input jsonb NOT NULL,
      output jsonb,
      status text NOT NULL CHECK (status IN ('succeeded', 'failed')),
      error text,
      latency_ms integer NOT NULL,
      model text,
      input_tokens integer,
      output_tokens integer,
      trace_id text,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX rollouts_by_cycle ON rollouts (cycle_id, phase, candidate_id);
    CREATE INDEX rollouts_by_agent_time ON rollouts (agent, created_at);

    CREATE TABLE rewards (
      id bigserial PRIMARY KEY,
      rollout_id text NOT NULL REFERENCES rollouts (id),
      scorer text NOT NULL,
      value double precision NOT NULL CHECK (value >= -1 AND value <= 1),
      reason text NOT NULL,
      details jsonb NOT NULL DEFAULT '{}'::jsonb,
      dedupe_key text NOT NULL DEFAULT '',
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (rollout_id, scorer, dedupe_key)
    );

    CREATE TABLE cycles (
      id text PRIMARY KEY,
      agent text NOT NULL,
      dataset text,
      trigger text NOT NULL,
      phase text NOT NULL,
      progress jsonb NOT NULL DEFAULT '{}'::jsonb,
      metrics jsonb NOT NULL DEFAULT '{}'::jsonb,
      outcome text,
      outcome_detail text,
      incumbent_version integer,
      deployed_version integer,
      started_at timestamptz NOT NULL DEFAULT now(),
      finished_at timestamptz
    );
    CREATE INDEX cycles_by_agent ON cycles (agent, started_at);

    CREATE TABLE cycle_candidates (
      cycle_id text NOT NULL REFERENCES cycles (id),
      id text NOT NULL,
      content jsonb NOT NULL,
      strategy text NOT NULL,
      rationale text NOT NULL,
      details jsonb NOT NULL DEFAULT '{}'::jsonb,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (cycle_id, id)
    );

    CREATE TABLE agent_leases (
      agent text PRIMARY KEY,
      cycle_id text NOT NULL,
      acquired_at timestamptz NOT NULL DEFAULT now()
    );
  `.execute(db);
}

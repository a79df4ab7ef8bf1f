import { type Kysely, sql } from "kysely";

/**
 * The write half of an OTLP ingest transaction (store/traces.ts `ingest`) as a function, so that its
 * statements are planned once per database session instead of on every call: PL/pgSQL keeps a plan per
 * statement. Planning the same four statements as one ad hoc statement was about half of its cost at one
 * span per request (README, "Benchmarks → OTLP ingest"). Each argument is one table's rows as a JSON array,
 * or NULL when there is nothing to write to it. Idempotent: spans on (trace, span); a link only fills a
 * span's empty rollout; a rollout of OTLP origin is replaced by its rebuilt version only when that differs;
 * rewards on (rollout, scorer, dedupe key). Rewards come last, so their rollouts exist when their foreign
 * key is checked. Returns how many rows of each were created or changed.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE FUNCTION agl_otlp_ingest_write(new_spans jsonb, new_links jsonb, new_rollouts jsonb, new_rewards jsonb,
      OUT spans_written integer, OUT links_written integer, OUT rollouts_written integer, OUT rewards_written integer)
    LANGUAGE plpgsql AS $$
    BEGIN
      spans_written := 0;
      links_written := 0;
      rollouts_written := 0;
      rewards_written := 0;
      IF new_spans IS NOT NULL THEN
        INSERT INTO spans (trace_id, span_id, parent_span_id, name, kind, start_time, end_time, status_code, status_message, attributes, resource, scope, rollout_id)
        SELECT x.trace_id, x.span_id, x.parent_span_id, x.name, x.kind, x.start_time, x.end_time, x.status_code, x.status_message, x.attributes, x.resource, x.scope, x.rollout_id
        FROM jsonb_to_recordset(new_spans) AS x(
          trace_id text, span_id text, parent_span_id text, name text, kind smallint, start_time timestamptz, end_time timestamptz,
          status_code smallint, status_message text, attributes jsonb, resource jsonb, scope text, rollout_id text)
        ON CONFLICT (trace_id, span_id) DO NOTHING;
        GET DIAGNOSTICS spans_written = ROW_COUNT;
      END IF;
      IF new_links IS NOT NULL THEN
        UPDATE spans AS s SET rollout_id = x.rollout_id
        FROM jsonb_to_recordset(new_links) AS x(trace_id text, span_id text, rollout_id text)
        WHERE s.trace_id = x.trace_id AND s.span_id = x.span_id AND s.rollout_id IS NULL;
        GET DIAGNOSTICS links_written = ROW_COUNT;
      END IF;
      IF new_rollouts IS NOT NULL THEN
        INSERT INTO rollouts AS r (id, agent, source, dataset, task_id, resource_name, resource_version, arm, candidate_id, cycle_id, phase,
          input, output, status, error, latency_ms, model, input_tokens, output_tokens, trace_id, instructions)
        SELECT x.id, x.agent, x.source, x.dataset, x.task_id, x.resource_name, x.resource_version, x.arm, x.candidate_id, x.cycle_id, x.phase,
          x.input::jsonb, x.output::jsonb, x.status, x.error, x.latency_ms, x.model, x.input_tokens, x.output_tokens, x.trace_id, x.instructions
        FROM jsonb_to_recordset(new_rollouts) AS x(
          id text, agent text, source text, dataset text, task_id text, resource_name text, resource_version integer, arm text, candidate_id text,
          cycle_id text, phase text, input text, output text, status text, error text, latency_ms integer, model text,
          input_tokens integer, output_tokens integer, trace_id text, instructions text)
        ON CONFLICT (id) DO UPDATE SET
          agent = excluded.agent, resource_name = excluded.resource_name, resource_version = excluded.resource_version, arm = excluded.arm,
          input = excluded.input, output = excluded.output, status = excluded.status, error = excluded.error,
          latency_ms = excluded.latency_ms, model = excluded.model, input_tokens = excluded.input_tokens,
          output_tokens = excluded.output_tokens, trace_id = excluded.trace_id, instructions = excluded.instructions
        WHERE r.source = 'otlp' AND (
          r.agent, r.resource_name, r.resource_version, r.arm, r.input, r.output, r.status, r.error,
          r.latency_ms, r.model, r.input_tokens, r.output_tokens, r.trace_id, r.instructions
        ) IS DISTINCT FROM (
          excluded.agent, excluded.resource_name, excluded.resource_version, excluded.arm, excluded.input, excluded.output, excluded.status, excluded.error,
          excluded.latency_ms, excluded.model, excluded.input_tokens, excluded.output_tokens, excluded.trace_id, excluded.instructions
        );
        GET DIAGNOSTICS rollouts_written = ROW_COUNT;
      END IF;
      IF new_rewards IS NOT NULL THEN
        INSERT INTO rewards (rollout_id, scorer, value, reason, details, dedupe_key)
        SELECT x.rollout_id, x.scorer, x.value, x.reason, x.details, x.dedupe_key
        FROM jsonb_to_recordset(new_rewards) AS x(rollout_id text, scorer text, value double precision, reason text, details jsonb, dedupe_key text)
        ON CONFLICT (rollout_id, scorer, dedupe_key) DO NOTHING;
        GET DIAGNOSTICS rewards_written = ROW_COUNT;
      END IF;
    END;
    $$;
  `.execute(db);
}

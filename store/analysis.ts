import { type Kysely, type RawBuilder, sql } from "kysely";
import { type Interval, tQuantile } from "../stats/intervals.ts";
import type { Database } from "./schema.ts";

export interface AnalysisFilter {
  agent: string;
  /** Only rollouts created at or after this time. */
  since?: Date;
  /** The scorers whose rewards make a rollout's reward, with their weights ("proxy" stands for every proxy event). */
  weights: Readonly<Record<string, number>>;
  /** The closed label sets: a confusion matrix per label field, labels in this order (others follow, sorted). */
  labels: Record<string, readonly string[]>;
}

export type { Interval };

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
}

/** Rows are expected labels, columns the labels answered (`(failed)`: the run failed; `(missing)`: no such field). */
export interface ConfusionMatrix {
  expected: string[];
  actual: string[];
  counts: number[][];
}

export interface VersionAnalysis {
  /** The prompt version the rollouts ran with; null for rollouts that recorded none (traces without prompt metadata). */
  version: number | null;
  rollouts: number;
  failed: number;
  firstAt: string;
  lastAt: string;
  /** Per rollout, the weighted mean of its rewards from the counted scorers; then the mean over rollouts. Null without any. */
  reward: Interval | null;
  /** The same per scorer (several human ratings of a rollout are averaged first). */
  rewardByScorer: Record<string, Interval>;
  /** Where ground truth was scored: answers right per field (a field is right when its matcher gave full credit). */
  fieldAccuracy: Record<string, { right: number; total: number; accuracy: number }>;
  confusion: Record<string, ConfusionMatrix>;
  latencyMs: Percentiles | null;
  /** Input plus output tokens per rollout, over the rollouts that recorded both. */
  tokens: Percentiles | null;
}

export interface Analysis {
  agent: string;
  since: string | null;
  scorers: string[];
  versions: VersionAnalysis[];
}

/** Unpublished candidates' rollouts (a cycle's search and validation) are not a prompt version's: they are left out. */
export function analysisStore(db: Kysely<Database>) {
  async function analyze(filter: AnalysisFilter): Promise<Analysis> {
    const where = sql`r.agent = ${filter.agent} AND r.candidate_id IS NULL${filter.since ? sql` AND r.created_at >= ${filter.since}` : sql``}`;
    const weight = scorerWeight(filter.weights);
    const labelFields = Object.keys(filter.labels);
    const [base, overall, byScorer, cells, fields] = await Promise.all([
      rows<{ version: number | null; rollouts: number; failed: number; first_at: Date; last_at: Date; latency: number[]; tokens: number[] | null }>(
        sql`SELECT r.resource_version AS version, count(*) AS rollouts, count(*) FILTER (WHERE r.status = 'failed') AS failed,
              min(r.created_at) AS first_at, max(r.created_at) AS last_at,
              percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY r.latency_ms) AS latency,
              percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY r.input_tokens + r.output_tokens) AS tokens
            FROM rollouts r WHERE ${where} GROUP BY r.resource_version`,
      ),
      rows<{ version: number | null; n: number; mean: number; sd: number | null }>(
        sql`WITH per_scorer AS (
              SELECT r.resource_version AS version, r.id, w.scorer, avg(w.value) AS value, ${weight} AS weight
              FROM rollouts r JOIN rewards w ON w.rollout_id = r.id
              WHERE ${where} AND ${weight} IS NOT NULL GROUP BY r.resource_version, r.id, w.scorer),
            per_rollout AS (SELECT version, id, sum(value * weight) / sum(weight) AS value FROM per_scorer GROUP BY version, id)
            SELECT version, count(*) AS n, avg(value) AS mean, stddev_samp(value) AS sd FROM per_rollout GROUP BY version`,
      ),
      rows<{ version: number | null; scorer: string; n: number; mean: number; sd: number | null }>(
        sql`WITH per_rollout AS (
              SELECT r.resource_version AS version, w.scorer, r.id, avg(w.value) AS value
              FROM rollouts r JOIN rewards w ON w.rollout_id = r.id
              WHERE ${where} GROUP BY r.resource_version, w.scorer, r.id)
            SELECT version, scorer, count(*) AS n, avg(value) AS mean, stddev_samp(value) AS sd FROM per_rollout GROUP BY version, scorer ORDER BY scorer`,
      ),
      rows<{ version: number | null; field: string; expected: string; actual: string; n: number }>(
        sql`SELECT r.resource_version AS version, e.key AS field, e.value AS expected,
              CASE WHEN r.output IS NULL THEN '(failed)' ELSE coalesce(r.output ->> e.key, '(missing)') END AS actual, count(*) AS n
            FROM rollouts r JOIN tasks t ON t.dataset = r.dataset AND t.id = r.task_id
              CROSS JOIN LATERAL jsonb_each_text(t.expected) AS e
            WHERE ${where} AND e.key IN (${labelFields.length > 0 ? sql.join(labelFields) : sql`NULL`}) GROUP BY 1, 2, 3, 4`,
      ),
      rows<{ version: number | null; field: string; right: number; total: number }>(
        sql`SELECT r.resource_version AS version, f.key AS field, count(*) FILTER (WHERE f.value = 'true'::jsonb) AS right, count(*) AS total
            FROM rollouts r JOIN rewards w ON w.rollout_id = r.id AND w.scorer = 'ground-truth'
              CROSS JOIN LATERAL jsonb_each(coalesce(w.details -> 'fields', '{}'::jsonb)) AS f
            WHERE ${where} GROUP BY 1, 2 ORDER BY 2`,
      ),
    ]);
    const key = (version: number | null) => String(version);
    const overallBy = new Map(overall.map((row) => [key(row.version), row]));
    const scorersBy = Map.groupBy(byScorer, (row) => key(row.version));
    const cellsBy = Map.groupBy(cells, (row) => key(row.version));
    const fieldsBy = Map.groupBy(fields, (row) => key(row.version));
    const versions = base
      .sort((a, b) => (a.version ?? Number.MAX_SAFE_INTEGER) - (b.version ?? Number.MAX_SAFE_INTEGER))
      .map((row): VersionAnalysis => {
        const reward = overallBy.get(key(row.version));
        const confusion = confusionMatrices(cellsBy.get(key(row.version)) ?? [], filter.labels ?? {});
        return {
          version: row.version,
          rollouts: row.rollouts,
          failed: row.failed,
          firstAt: row.first_at.toISOString(),
          lastAt: row.last_at.toISOString(),
          reward: reward ? interval(reward) : null,
          rewardByScorer: Object.fromEntries((scorersBy.get(key(row.version)) ?? []).map((scored) => [scored.scorer, interval(scored)])),
          fieldAccuracy: Object.fromEntries((fieldsBy.get(key(row.version)) ?? []).map((field) => [field.field, { right: field.right, total: field.total, accuracy: field.total > 0 ? field.right / field.total : 0 }])),
          confusion,
          latencyMs: percentiles(row.latency),
          tokens: percentiles(row.tokens),
        };
      });
    return { agent: filter.agent, since: filter.since?.toISOString() ?? null, scorers: Object.keys(filter.weights), versions };
  }

  async function rows<Row>(query: RawBuilder<Row>): Promise<Row[]> {
    return (await query.execute(db)).rows;
  }

  return { analyze };
}

/** The weight of reward `w`'s scorer, or NULL when it does not count ("proxy" weighs every proxy event). */
function scorerWeight(weights: Readonly<Record<string, number>>): RawBuilder<unknown> {
  const cases = Object.entries(weights).map(([scorer, weight]) => sql`WHEN w.scorer = ${scorer} THEN ${weight}::float8`);
  if (weights.proxy !== undefined) cases.push(sql`WHEN w.scorer LIKE 'proxy:%' THEN ${weights.proxy}::float8`);
  return cases.length > 0 ? sql`(CASE ${sql.join(cases, sql` `)} END)` : sql`NULL::float8`;
}

function interval(row: { n: number; mean: number; sd: number | null }): Interval {
  if (row.n < 2 || row.sd === null) return { n: row.n, mean: row.mean, low: null, high: null };
  const half = (tQuantile(0.975, row.n - 1) * row.sd) / Math.sqrt(row.n);
  return { n: row.n, mean: row.mean, low: row.mean - half, high: row.mean + half };
}

function percentiles(values: number[] | null): Percentiles | null {
  if (!values || values.some((value) => value === null)) return null;
  const [p50, p90, p99] = values as [number, number, number];
  return { p50, p90, p99 };
}

export function confusionMatrices(cells: { field: string; expected: string; actual: string; n: number }[], labels: Record<string, readonly string[]>): Record<string, ConfusionMatrix> {
  const matrices: Record<string, ConfusionMatrix> = {};
  for (const [field, fieldCells] of Map.groupBy(cells, (cell) => cell.field)) {
    const order = (seen: string[]) => {
      const known = labels[field] ?? [];
      return [...known.filter((label) => seen.includes(label)), ...seen.filter((label) => !known.includes(label)).sort()];
    };
    const expected = order([...new Set(fieldCells.map((cell) => cell.expected))]);
    const actual = order([...new Set([...expected, ...fieldCells.map((cell) => cell.actual)])]);
    const counts = expected.map(() => actual.map(() => 0));
    for (const cell of fieldCells) counts[expected.indexOf(cell.expected)]![actual.indexOf(cell.actual)]! += cell.n;
    matrices[field] = { expected, actual, counts };
  }
  return Object.fromEntries(Object.entries(matrices).sort(([a], [b]) => a.localeCompare(b)));
}

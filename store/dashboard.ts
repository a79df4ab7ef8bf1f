import { type Kysely, sql } from "kysely";
import { type Rollout, rolloutsWithRewards } from "./rollouts.ts";
import type { Database, RolloutPhase, RolloutSource } from "./schema.ts";

export interface RolloutSearch {
  agent: string;
  version?: number;
  source?: RolloutSource;
  /** Only rollouts this scorer rewarded; the reward range then applies to its rewards alone. */
  scorer?: string;
  /** Bounds (inclusive) on the mean of the rollout's rewards; a bound leaves out rollouts without any. */
  minReward?: number;
  maxReward?: number;
  limit: number;
}

/** When a cycle's agent runs of one phase happened: the first and last rollout it stored. */
export interface PhaseSpan {
  cycleId: string;
  phase: RolloutPhase;
  firstAt: Date;
  lastAt: Date;
  rollouts: number;
}

/** The dashboard's reads that no other module makes: a cheap change stamp, the rollout filter, cycle phase spans. */
export function dashboardStore(db: Kysely<Database>) {
  /**
   * Changes whenever something the dashboard shows changes: a label move or publish (every one is an audit
   * event), a reward, a rollout of the agent, a cycle starting, moving on or finishing. Index lookups and
   * one pass over `cycles` (a row per cycle), so a page may ask every few seconds.
   */
  async function pulse(agent: string): Promise<string> {
    const { rows } = await sql<{ stamp: string }>`SELECT md5(concat_ws('|',
        (SELECT max(id) FROM resource_events),
        (SELECT max(id) FROM rewards),
        (SELECT max(created_at) FROM rollouts WHERE agent = ${agent}),
        (SELECT string_agg(id || status || md5(state::text), ',') FROM canaries WHERE agent = ${agent} AND status = 'running'),
        (SELECT count(*) || ':' || count(finished_at) || ':' || coalesce(string_agg(id || '@' || phase || progress::text, ',' ORDER BY id) FILTER (WHERE finished_at IS NULL), '') FROM cycles)
      )) AS stamp`.execute(db);
    return rows[0]!.stamp;
  }

  /** Newest first. */
  async function searchRollouts(search: RolloutSearch): Promise<Rollout[]> {
    let query = db.selectFrom("rollouts as r").selectAll("r").where("r.agent", "=", search.agent);
    if (search.version !== undefined) query = query.where("r.resource_version", "=", search.version);
    if (search.source !== undefined) query = query.where("r.source", "=", search.source);
    if (search.scorer !== undefined || search.minReward !== undefined || search.maxReward !== undefined) {
      const mean = sql<number>`(SELECT avg(w.value) FROM rewards w WHERE w.rollout_id = r.id${search.scorer !== undefined ? sql` AND w.scorer = ${search.scorer}` : sql``})`;
      query = query.where(sql<boolean>`${mean} IS NOT NULL`);
      if (search.minReward !== undefined) query = query.where(sql<boolean>`${mean} >= ${search.minReward}`);
      if (search.maxReward !== undefined) query = query.where(sql<boolean>`${mean} <= ${search.maxReward}`);
    }
    const rows = await query.orderBy("r.created_at", "desc").orderBy("r.id", "desc").limit(search.limit).execute();
    return rolloutsWithRewards(db, rows);
  }

  async function phaseSpans(cycleIds: readonly string[]): Promise<PhaseSpan[]> {
    if (cycleIds.length === 0) return [];
    const rows = await db
      .selectFrom("rollouts")
      .select((eb) => ["cycle_id", "phase", eb.fn.min("created_at").as("first_at"), eb.fn.max("created_at").as("last_at"), eb.fn.countAll<number>().as("rollouts")])
      .where("cycle_id", "in", [...cycleIds])
      .where("phase", "is not", null)
      .groupBy(["cycle_id", "phase"])
      .orderBy("first_at")
      .execute();
    return rows.map((row) => ({ cycleId: row.cycle_id!, phase: row.phase!, firstAt: row.first_at, lastAt: row.last_at, rollouts: row.rollouts }));
  }

  return { pulse, searchRollouts, phaseSpans };
}

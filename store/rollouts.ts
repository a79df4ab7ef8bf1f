import type { Kysely, Selectable } from "kysely";
import { NotFoundError } from "./errors.ts";
import type { Database, RewardsTable, RolloutPhase, RolloutSource, RolloutsTable, ToolCallRecord } from "./schema.ts";

export interface NewRollout {
  id: string;
  agent: string;
  source: RolloutSource;
  dataset: string | null;
  taskId: string | null;
  resourceName: string;
  resourceVersion: number | null;
  candidateId: string | null;
  cycleId: string | null;
  phase: RolloutPhase | null;
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
  status: "succeeded" | "failed";
  error: string | null;
  latencyMs: number;
  model: string | null;
  inputTokens: number | null;
  outputTokens: number | null;
  traceId: string | null;
  /** The system instructions, when the rollout arrived with them (OTLP traces). */
  instructions?: string | null;
  /** The tools the agent called, in order. */
  toolCalls?: ToolCallRecord[] | null;
  /** The arm of the traffic split that served its prompt (`production` or `canary`), when a split chose it. */
  arm?: string | null;
}

export interface Reward {
  rolloutId: string;
  scorer: string;
  value: number;
  reason: string;
  details: Record<string, unknown>;
  dedupeKey: string;
  createdAt: Date;
}

export interface Rollout extends NewRollout {
  createdAt: Date;
  rewards: Reward[];
}

export interface CycleRolloutFilter {
  cycleId: string;
  phase: RolloutPhase;
  /** `null` selects the incumbent's rollouts (no candidate); omit for all. */
  candidateId?: string | null;
}

const INSERT_CHUNK = 200;

export function rolloutsStore(db: Kysely<Database>) {
  /** Idempotent on the rollout id: a retried batch re-inserting a rollout changes nothing. Returns how many were new. */
  async function insertMany(rollouts: readonly NewRollout[]): Promise<number> {
    let inserted = 0;
    for (let start = 0; start < rollouts.length; start += INSERT_CHUNK) {
      const result = await db
        .insertInto("rollouts")
        .values(rollouts.slice(start, start + INSERT_CHUNK).map(rolloutRow))
        .onConflict((oc) => oc.column("id").doNothing())
        .executeTakeFirst();
      inserted += Number(result.numInsertedOrUpdatedRows ?? 0n);
    }
    return inserted;
  }

  async function existingIds(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await db.selectFrom("rollouts").select("id").where("id", "in", ids).execute();
    return new Set(rows.map((row) => row.id));
  }

  async function get(id: string): Promise<Rollout> {
    const row = await db.selectFrom("rollouts").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new NotFoundError(`Rollout "${id}" does not exist.`);
    const [rollout] = await withRewards([row]);
    return rollout!;
  }

  async function listForCycle(filter: CycleRolloutFilter): Promise<Rollout[]> {
    let query = db.selectFrom("rollouts").selectAll().where("cycle_id", "=", filter.cycleId).where("phase", "=", filter.phase);
    if (filter.candidateId === null) query = query.where("candidate_id", "is", null);
    else if (filter.candidateId !== undefined) query = query.where("candidate_id", "=", filter.candidateId);
    return withRewards(await query.orderBy("task_id").orderBy("id").execute());
  }

  /** Rollouts of live traffic (the worker queue, OTLP), not of cycles, that arrived in [from, to). */
  async function listTraffic(filter: { agent: string; from: Date; to: Date }): Promise<Rollout[]> {
    const rows = await db
      .selectFrom("rollouts")
      .selectAll()
      .where("agent", "=", filter.agent)
      .where("cycle_id", "is", null)
      .where("created_at", ">=", filter.from)
      .where("created_at", "<", filter.to)
      .orderBy("created_at")
      .orderBy("id")
      .execute();
    return withRewards(rows);
  }

  async function getMany(ids: readonly string[]): Promise<Rollout[]> {
    if (ids.length === 0) return [];
    const rows: Selectable<RolloutsTable>[] = [];
    for (let start = 0; start < ids.length; start += INSERT_CHUNK) {
      rows.push(...(await db.selectFrom("rollouts").selectAll().where("id", "in", ids.slice(start, start + INSERT_CHUNK)).execute()));
    }
    const byId = new Map(rows.map((row) => [row.id, row]));
    return withRewards(ids.map((id) => byId.get(id)).filter((row): row is Selectable<RolloutsTable> => row !== undefined));
  }

  /** One page of the agent's rollouts created at or after `since`, in id order: pass the last id back as `afterId` for the next. */
  async function listForAgent(filter: { agent: string; since?: Date; afterId?: string; limit: number }): Promise<Rollout[]> {
    let query = db.selectFrom("rollouts").selectAll().where("agent", "=", filter.agent);
    if (filter.since) query = query.where("created_at", ">=", filter.since);
    if (filter.afterId !== undefined) query = query.where("id", ">", filter.afterId);
    return withRewards(await query.orderBy("id").limit(filter.limit).execute());
  }

  async function countForAgent(filter: { agent: string; since?: Date }): Promise<number> {
    let query = db.selectFrom("rollouts").select((eb) => eb.fn.countAll<number>().as("count")).where("agent", "=", filter.agent);
    if (filter.since) query = query.where("created_at", ">=", filter.since);
    return Number((await query.executeTakeFirstOrThrow()).count);
  }

  async function idsWithTrace(traceId: string): Promise<string[]> {
    return (await db.selectFrom("rollouts").select("id").where("trace_id", "=", traceId).orderBy("id").execute()).map((row) => row.id);
  }

  async function getReward(rolloutId: string, scorer: string, dedupeKey: string): Promise<Reward | undefined> {
    const row = await db.selectFrom("rewards").selectAll().where("rollout_id", "=", rolloutId).where("scorer", "=", scorer).where("dedupe_key", "=", dedupeKey).executeTakeFirst();
    return row && toReward(row);
  }

  async function countForCycle(cycleId: string): Promise<number> {
    const row = await db.selectFrom("rollouts").select((eb) => eb.fn.countAll<number>().as("count")).where("cycle_id", "=", cycleId).executeTakeFirst();
    return Number(row?.count ?? 0);
  }

  /** Idempotent per (rollout, scorer, dedupe key): scoring twice never doubles a reward. Returns how many were new. */
  async function addRewards(rewards: readonly Omit<Reward, "createdAt">[]): Promise<number> {
    if (rewards.length === 0) return 0;
    const result = await db
      .insertInto("rewards")
      .values(
        rewards.map((reward) => ({
          rollout_id: reward.rolloutId,
          scorer: reward.scorer,
          value: reward.value,
          reason: reward.reason,
          details: JSON.stringify(reward.details),
          dedupe_key: reward.dedupeKey,
        })),
      )
      .onConflict((oc) => oc.columns(["rollout_id", "scorer", "dedupe_key"]).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n);
  }

  function withRewards(rows: Selectable<RolloutsTable>[]): Promise<Rollout[]> {
    return rolloutsWithRewards(db, rows);
  }

  return { insertMany, existingIds, get, getMany, listForCycle, listTraffic, listForAgent, countForAgent, idsWithTrace, getReward, countForCycle, addRewards };
}

/** Rollout rows as Rollouts, each with its rewards (in reward id order). */
export async function rolloutsWithRewards(db: Kysely<Database>, rows: Selectable<RolloutsTable>[]): Promise<Rollout[]> {
  if (rows.length === 0) return [];
  const rewards: Selectable<RewardsTable>[] = [];
  for (let start = 0; start < rows.length; start += INSERT_CHUNK) {
    const ids = rows.slice(start, start + INSERT_CHUNK).map((row) => row.id);
    rewards.push(...(await db.selectFrom("rewards").selectAll().where("rollout_id", "in", ids).orderBy("id").execute()));
  }
  const byRollout = Map.groupBy(rewards, (reward) => reward.rollout_id);
  return rows.map((row) => ({ ...fromRow(row), rewards: (byRollout.get(row.id) ?? []).map(toReward) }));
}

/** A rollout as its row: JSON columns as text, the form both kysely inserts and a JSON-recordset insert take. */
export function rolloutRow(rollout: NewRollout) {
  return {
    id: rollout.id,
    agent: rollout.agent,
    source: rollout.source,
    dataset: rollout.dataset,
    task_id: rollout.taskId,
    resource_name: rollout.resourceName,
    resource_version: rollout.resourceVersion,
    candidate_id: rollout.candidateId,
    cycle_id: rollout.cycleId,
    phase: rollout.phase,
    input: JSON.stringify(rollout.input),
    output: rollout.output === null ? null : JSON.stringify(rollout.output),
    status: rollout.status,
    error: rollout.error,
    latency_ms: Math.round(rollout.latencyMs),
    model: rollout.model,
    input_tokens: rollout.inputTokens,
    output_tokens: rollout.outputTokens,
    trace_id: rollout.traceId,
    instructions: rollout.instructions ?? null,
    tool_calls: rollout.toolCalls && rollout.toolCalls.length > 0 ? JSON.stringify(rollout.toolCalls) : null,
    arm: rollout.arm ?? null,
  };
}

function fromRow(row: Selectable<RolloutsTable>): Omit<Rollout, "rewards"> {
  return {
    id: row.id,
    agent: row.agent,
    source: row.source,
    dataset: row.dataset,
    taskId: row.task_id,
    resourceName: row.resource_name,
    resourceVersion: row.resource_version,
    candidateId: row.candidate_id,
    cycleId: row.cycle_id,
    phase: row.phase,
    input: row.input,
    output: row.output,
    status: row.status,
    error: row.error,
    latencyMs: row.latency_ms,
    model: row.model,
    inputTokens: row.input_tokens,
    outputTokens: row.output_tokens,
    traceId: row.trace_id,
    instructions: row.instructions,
    toolCalls: row.tool_calls,
    arm: row.arm,
    createdAt: row.created_at,
  };
}

function toReward(row: Selectable<RewardsTable>): Reward {
  return {
    rolloutId: row.rollout_id,
    scorer: row.scorer,
    value: row.value,
    reason: row.reason,
    details: row.details,
    dedupeKey: row.dedupe_key,
    createdAt: row.created_at,
  };
}

/** The documented JSON form of a reward (README: "Rewards"): its fields, the time as ISO 8601. */
export function rewardJson(reward: Reward) {
  return { ...reward, createdAt: reward.createdAt.toISOString() };
}

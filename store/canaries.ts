import { type Kysely, type Selectable, sql } from "kysely";
import { ConflictError, InvalidInputError, NotFoundError } from "./errors.ts";
import type { ResourceChanges } from "./resource-changes.ts";
import {
  CANARY,
  labelConflict,
  labelVersionForUpdate,
  missingLabel,
  missingVersion,
  moveLabelIn,
  PRODUCTION,
  removeLabelIn,
  type ResourceEvent,
  versionExists,
} from "./resources.ts";
import type { CanariesTable, CanaryStatus, Database } from "./schema.ts";

/** How a canary's guard decides (README: "Canaries and their guard"). */
export interface GuardSettings {
  /** Rollouts per arm before the guard looks at all. */
  minRollouts: number;
  /** The guard looks again each time the canary arm has this many more rollouts. */
  lookEvery: number;
  /** The chance of a wrong promotion or rollback under no difference, over every look. */
  alpha: number;
  /** The guard ends the canary after this long, whatever the evidence: rolled back unless promoted by then. */
  maxDurationMs: number;
  /** Share of the arms' rollouts the LLM judge rates, deterministically by rollout id. */
  judgeSampleRate: number;
  /** A run is slow when it takes longer than production's p90 × (1 + this). */
  latencyTolerance: number;
  /** A guard activity silent this long is retried on another worker. */
  heartbeatTimeoutSeconds: number;
}

export interface Canary {
  id: string;
  agent: string;
  resource: string;
  baselineVersion: number;
  canaryVersion: number;
  weight: number;
  status: CanaryStatus;
  settings: GuardSettings;
  state: Record<string, unknown>;
  startedBy: string;
  startedAt: Date;
  decidedBy: string | null;
  decisionReason: string | null;
  decidedAt: Date | null;
}

export interface StartCanaryInput {
  id: string;
  agent: string;
  resource: string;
  version: number;
  weight: number;
  actor: string;
  reason?: string;
  settings: GuardSettings;
  /** Compare-and-set on `production`; default: wherever it points when the transaction reads it. */
  expectedProduction?: number;
}

export type CanaryOutcome = "promoted" | "rolled_back";

/** What one arm's rollouts since the canary started add up to. */
export interface ArmCounts {
  rollouts: number;
  failed: number;
  p90LatencyMs: number | null;
  /** Rollouts slower than production's p90 × the factor asked for. */
  slow: number;
}

export type Arm = "production" | "canary";
export const ARMS: readonly Arm[] = ["production", "canary"];

/** The weight rule, checked at every boundary that starts a canary. */
export function checkWeight(weight: number): void {
  if (!(Number.isFinite(weight) && weight > 0 && weight <= 100)) {
    throw new InvalidInputError(`A canary's weight is the share of keyed traffic it serves: more than 0 and at most 100 (percent), got ${weight}. Nothing was changed.`);
  }
}

export function canariesStore(db: Kysely<Database>, changes: Pick<ResourceChanges, "committed">) {
  /**
   * Puts `version` on the `canary` label with its weight and records the canary, in one transaction:
   * `production` must exist (and be where the caller expects), the version must exist and differ from
   * it, and the resource must have no running canary. Retried with the same id, it returns the first start.
   */
  async function start(input: StartCanaryInput): Promise<{ canary: Canary; event: ResourceEvent | null }> {
    checkWeight(input.weight);
    const started = await db.transaction().execute(async (trx) => {
      const existing = await trx.selectFrom("canaries").selectAll().where("id", "=", input.id).executeTakeFirst();
      if (existing) return { row: existing, event: null };
      if (!(await versionExists(trx, input.resource, input.version))) throw await missingVersion(trx, input.resource, input.version);
      const production = await labelVersionForUpdate(trx, input.resource, PRODUCTION);
      if (production === null) throw await missingLabel(trx, input.resource, PRODUCTION);
      if (input.expectedProduction !== undefined && input.expectedProduction !== production) throw labelConflict(input.resource, PRODUCTION, production, input.expectedProduction);
      if (production === input.version) throw new InvalidInputError(`Version ${input.version} of "${input.resource}" is production already: a canary needs another version. Nothing was changed.`);
      const running = await trx.selectFrom("canaries").selectAll().where("resource", "=", input.resource).where("status", "=", "running").forUpdate().executeTakeFirst();
      if (running) throw alreadyRunning(running);
      const row = await trx
        .insertInto("canaries")
        .values({
          id: input.id,
          agent: input.agent,
          resource: input.resource,
          baseline_version: production,
          canary_version: input.version,
          weight: input.weight,
          status: "running",
          settings: JSON.stringify(input.settings),
          started_by: input.actor,
        })
        .returningAll()
        .executeTakeFirstOrThrow()
        .catch((error: unknown) => {
          if ((error as { code?: string }).code === "23505") throw new ConflictError(`Agent "${input.agent}" already has a running canary. Nothing was changed.`);
          throw error;
        });
      const event = await moveLabelIn(trx, {
        name: input.resource,
        label: CANARY,
        toVersion: input.version,
        expectedVersion: null,
        actor: input.actor,
        kind: "canary_started",
        weight: input.weight,
        reason: input.reason ?? `canary ${input.id}: v${input.version} serves ${input.weight}% of keyed traffic against production v${production}`,
      });
      return { row, event };
    });
    if (started.event) await changes.committed(input.resource);
    return { canary: toCanary(started.row), event: started.event };
  }

  /**
   * Ends a running canary. Promoted: `production` moves to the canary's version (compare-and-set on the
   * baseline) and the `canary` label goes, audited as `canary_promoted`. Rolled back: the `canary` label
   * goes and `production` stays, audited as `canary_rolled_back`. A canary already decided is returned as
   * it is, with no event: a retried or raced decision lands once.
   */
  async function conclude(input: { id: string; outcome: CanaryOutcome; actor: string; reason: string }): Promise<{ canary: Canary; event: ResourceEvent | null }> {
    const concluded = await db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom("canaries").selectAll().where("id", "=", input.id).forUpdate().executeTakeFirst();
      if (!row) throw new NotFoundError(`Canary "${input.id}" does not exist.`);
      if (row.status !== "running") return { row, event: null };
      const event =
        input.outcome === "promoted"
          ? await promoteIn(trx, row, input)
          : await removeLabelIn(trx, { name: row.resource, label: CANARY, expectedVersion: row.canary_version, actor: input.actor, reason: input.reason, kind: "canary_rolled_back" });
      const updated = await trx
        .updateTable("canaries")
        .set({ status: input.outcome, decided_by: input.actor, decision_reason: input.reason, decided_at: new Date() })
        .where("id", "=", input.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return { row: updated, event };
    });
    if (concluded.event) await changes.committed(concluded.row.resource);
    return { canary: toCanary(concluded.row), event: concluded.event };
  }

  async function get(id: string): Promise<Canary> {
    const row = await db.selectFrom("canaries").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new NotFoundError(`Canary "${id}" does not exist.`);
    return toCanary(row);
  }

  async function running(resource: string): Promise<Canary | undefined> {
    const row = await db.selectFrom("canaries").selectAll().where("resource", "=", resource).where("status", "=", "running").executeTakeFirst();
    return row && toCanary(row);
  }

  /** Newest first. */
  async function list(agent: string, limit = 20): Promise<Canary[]> {
    const rows = await db.selectFrom("canaries").selectAll().where("agent", "=", agent).orderBy("started_at", "desc").limit(limit).execute();
    return rows.map(toCanary);
  }

  async function recordState(id: string, state: Record<string, unknown>): Promise<void> {
    await db.updateTable("canaries").set({ state: JSON.stringify(state) }).where("id", "=", id).execute();
  }

  /** Rollouts of the canary arm so far: what the guard counts its looks by. */
  async function canaryRollouts(canary: Canary): Promise<number> {
    const row = await armRollouts(canary)
      .where("rollouts.arm", "=", "canary")
      .select((eb) => eb.fn.countAll<number>().as("count"))
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  /** Per arm: rollouts, failures, p90 latency, and how many ran slower than production's p90 × `slowFactor`. */
  async function armCounts(canary: Canary, slowFactor: number): Promise<Record<Arm, ArmCounts>> {
    const { rows } = await sql<{ arm: Arm; rollouts: number; failed: number; p90: number | null; slow: number }>`
      WITH a AS (${armRollouts(canary).select(["rollouts.arm", "rollouts.status", "rollouts.latency_ms"])}),
           p AS (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY latency_ms) AS p90 FROM a WHERE arm = 'production')
      SELECT a.arm, count(*) AS rollouts, count(*) FILTER (WHERE a.status = 'failed') AS failed,
             percentile_cont(0.9) WITHIN GROUP (ORDER BY a.latency_ms) AS p90,
             count(*) FILTER (WHERE a.latency_ms > (SELECT p90 FROM p) * ${slowFactor}) AS slow
      FROM a GROUP BY a.arm`.execute(db);
    const empty: ArmCounts = { rollouts: 0, failed: 0, p90LatencyMs: null, slow: 0 };
    const byArm = new Map(rows.map((row) => [row.arm, { rollouts: Number(row.rollouts), failed: Number(row.failed), p90LatencyMs: row.p90 === null ? null : Number(row.p90), slow: Number(row.slow) }]));
    return { production: byArm.get("production") ?? empty, canary: byArm.get("canary") ?? empty };
  }

  /** Each arm rollout's rewards, averaged per scorer (several ratings of one scorer count once). */
  async function armRewards(canary: Canary): Promise<{ rolloutId: string; arm: Arm; scorer: string; value: number }[]> {
    const rows = await armRollouts(canary)
      .innerJoin("rewards as w", "w.rollout_id", "rollouts.id")
      .select(["rollouts.id as rolloutId", "rollouts.arm as arm", "w.scorer as scorer", (eb) => eb.fn.avg<number>("w.value").as("value")])
      .groupBy(["rollouts.id", "rollouts.arm", "w.scorer"])
      .execute();
    return rows.map((row) => ({ rolloutId: row.rolloutId, arm: row.arm as Arm, scorer: row.scorer, value: Number(row.value) }));
  }

  /** Ids of arm rollouts the judge has not rated that fall in the sample (md5 of the id below `rate`: the same ids on every look and every backend). */
  async function unjudgedSample(canary: Canary, scorer: string, rate: number, limit: number): Promise<string[]> {
    if (rate <= 0) return [];
    const rows = await armRollouts(canary)
      .select("rollouts.id")
      .where(sql<boolean>`('x' || substr(md5(rollouts.id), 1, 8))::bit(32)::bigint < ${Math.floor(rate * 2 ** 32)}`)
      .where((eb) => eb.not(eb.exists(eb.selectFrom("rewards as j").select("j.id").whereRef("j.rollout_id", "=", "rollouts.id").where("j.scorer", "=", scorer))))
      .orderBy("rollouts.id")
      .limit(limit)
      .execute();
    return rows.map((row) => row.id);
  }

  /** The rollouts of both arms: each arm's own version, since the canary started, served by the split. */
  function armRollouts(canary: Canary) {
    return db
      .selectFrom("rollouts")
      .where("rollouts.agent", "=", canary.agent)
      .where("rollouts.created_at", ">=", canary.startedAt)
      .where((eb) =>
        eb.or([
          eb.and([eb("rollouts.arm", "=", "canary"), eb("rollouts.resource_version", "=", canary.canaryVersion)]),
          eb.and([eb("rollouts.arm", "=", "production"), eb("rollouts.resource_version", "=", canary.baselineVersion)]),
        ]),
      );
  }

  return { start, conclude, get, running, list, recordState, canaryRollouts, armCounts, armRewards, unjudgedSample };
}

async function promoteIn(trx: Parameters<typeof moveLabelIn>[0], row: Selectable<CanariesTable>, input: { actor: string; reason: string }): Promise<ResourceEvent> {
  const event = await moveLabelIn(trx, {
    name: row.resource,
    label: PRODUCTION,
    toVersion: row.canary_version,
    expectedVersion: row.baseline_version,
    actor: input.actor,
    reason: input.reason,
    kind: "canary_promoted",
  });
  await trx.deleteFrom("resource_labels").where("name", "=", row.resource).where("label", "=", CANARY).where("version", "=", row.canary_version).execute();
  return event;
}

function alreadyRunning(row: Selectable<CanariesTable>): ConflictError {
  return new ConflictError(
    `Agent "${row.agent}" already has a running canary, ${row.id} (v${row.canary_version} at ${row.weight}% against v${row.baseline_version}): one canary per agent at a time. See it with \`agl canary status ${row.agent}\`, end it with \`agl canary promote|abort ${row.agent}\`. Nothing was changed.`,
  );
}

function toCanary(row: Selectable<CanariesTable>): Canary {
  return {
    id: row.id,
    agent: row.agent,
    resource: row.resource,
    baselineVersion: row.baseline_version,
    canaryVersion: row.canary_version,
    weight: row.weight,
    status: row.status,
    settings: row.settings as unknown as GuardSettings,
    state: row.state,
    startedBy: row.started_by,
    startedAt: row.started_at,
    decidedBy: row.decided_by,
    decisionReason: row.decision_reason,
    decidedAt: row.decided_at,
  };
}

/** The documented JSON form of a canary (`agl canary status --json`, the dashboard). */
export function canaryJson(canary: Canary) {
  return {
    id: canary.id,
    agent: canary.agent,
    resource: canary.resource,
    baselineVersion: canary.baselineVersion,
    canaryVersion: canary.canaryVersion,
    weight: canary.weight,
    status: canary.status,
    settings: canary.settings,
    state: canary.state,
    startedBy: canary.startedBy,
    startedAt: canary.startedAt.toISOString(),
    decidedBy: canary.decidedBy,
    decisionReason: canary.decisionReason,
    decidedAt: canary.decidedAt?.toISOString() ?? null,
  };
}

import type { Kysely, Selectable } from "kysely";
import { NotFoundError } from "./errors.ts";
import type { CycleCandidatesTable, CycleOutcome, CyclesTable, Database, PromptContent } from "./schema.ts";

export interface Cycle {
  id: string;
  agent: string;
  dataset: string | null;
  trigger: string;
  phase: string;
  progress: Record<string, unknown>;
  metrics: Record<string, unknown>;
  outcome: CycleOutcome | null;
  outcomeDetail: string | null;
  incumbentVersion: number | null;
  deployedVersion: number | null;
  startedAt: Date;
  finishedAt: Date | null;
}

export interface Candidate {
  cycleId: string;
  id: string;
  content: PromptContent;
  strategy: string;
  rationale: string;
  details: Record<string, unknown>;
}

export interface CycleUpdate {
  phase?: string;
  dataset?: string;
  progress?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  incumbentVersion?: number;
  outcome?: CycleOutcome;
  outcomeDetail?: string;
  deployedVersion?: number | null;
  finished?: boolean;
}

export type LeaseResult = { acquired: true } | { acquired: false; holder: string };

export function cyclesStore(db: Kysely<Database>) {
  /** Idempotent: a retried start leaves the first row as it is. */
  async function create(cycle: { id: string; agent: string; dataset: string | null; trigger: string }): Promise<void> {
    await db
      .insertInto("cycles")
      .values({ ...cycle, phase: "starting", progress: "{}", metrics: "{}" })
      .onConflict((oc) => oc.column("id").doNothing())
      .execute();
  }

  async function update(id: string, patch: CycleUpdate): Promise<void> {
    await db
      .updateTable("cycles")
      .set({
        ...(patch.phase !== undefined ? { phase: patch.phase } : {}),
        ...(patch.dataset !== undefined ? { dataset: patch.dataset } : {}),
        ...(patch.progress !== undefined ? { progress: JSON.stringify(patch.progress) } : {}),
        ...(patch.metrics !== undefined ? { metrics: JSON.stringify(patch.metrics) } : {}),
        ...(patch.incumbentVersion !== undefined ? { incumbent_version: patch.incumbentVersion } : {}),
        ...(patch.outcome !== undefined ? { outcome: patch.outcome } : {}),
        ...(patch.outcomeDetail !== undefined ? { outcome_detail: patch.outcomeDetail } : {}),
        ...(patch.deployedVersion !== undefined ? { deployed_version: patch.deployedVersion } : {}),
        ...(patch.finished ? { finished_at: new Date() } : {}),
      })
      .where("id", "=", id)
      .execute();
  }

  /**
   * A running cycle's phase and progress. A finished cycle's are left alone: progress is written beside
   * the cycle's work, not in its path, so a write may land after the outcome and must not undo it.
   */
  async function recordProgress(id: string, progress: { phase: string } & Record<string, unknown>): Promise<void> {
    await db
      .updateTable("cycles")
      .set({ phase: progress.phase, progress: JSON.stringify(progress) })
      .where("id", "=", id)
      .where("finished_at", "is", null)
      .execute();
  }

  async function get(id: string): Promise<Cycle> {
    const row = await db.selectFrom("cycles").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new NotFoundError(`Cycle "${id}" does not exist. List cycles with: agl cycle list`);
    return fromRow(row);
  }

  async function find(id: string): Promise<Cycle | undefined> {
    const row = await db.selectFrom("cycles").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  /** The cycles with these ids that exist, by id: one query (none for no ids). */
  async function findMany(ids: readonly string[]): Promise<Map<string, Cycle>> {
    if (ids.length === 0) return new Map();
    const rows = await db.selectFrom("cycles").selectAll().where("id", "in", ids).execute();
    return new Map(rows.map((row) => [row.id, fromRow(row)]));
  }

  async function list(filter: { agent?: string; limit?: number } = {}): Promise<Cycle[]> {
    let query = db.selectFrom("cycles").selectAll();
    if (filter.agent) query = query.where("agent", "=", filter.agent);
    const rows = await query
      .orderBy("started_at", "desc")
      .orderBy("id", "desc")
      .limit(filter.limit ?? 50)
      .execute();
    return rows.map(fromRow);
  }

  /** At most one cycle per agent holds the lease; the primary key makes the claim atomic. */
  async function acquireLease(agent: string, cycleId: string): Promise<LeaseResult> {
    await db
      .insertInto("agent_leases")
      .values({ agent, cycle_id: cycleId })
      .onConflict((oc) => oc.column("agent").doNothing())
      .execute();
    const row = await db.selectFrom("agent_leases").select("cycle_id").where("agent", "=", agent).executeTakeFirst();
    if (!row) return acquireLease(agent, cycleId);
    return row.cycle_id === cycleId ? { acquired: true } : { acquired: false, holder: row.cycle_id };
  }

  /** Takes over a lease whose holder is known to be gone; compare-and-set on the old holder. */
  async function takeOverLease(agent: string, staleHolder: string, cycleId: string): Promise<boolean> {
    const result = await db
      .updateTable("agent_leases")
      .set({ cycle_id: cycleId, acquired_at: new Date() })
      .where("agent", "=", agent)
      .where("cycle_id", "=", staleHolder)
      .executeTakeFirst();
    return result.numUpdatedRows === 1n;
  }

  async function leaseHolder(agent: string): Promise<string | undefined> {
    const row = await db.selectFrom("agent_leases").select("cycle_id").where("agent", "=", agent).executeTakeFirst();
    return row?.cycle_id;
  }

  async function releaseLease(agent: string, cycleId: string): Promise<void> {
    await db.deleteFrom("agent_leases").where("agent", "=", agent).where("cycle_id", "=", cycleId).execute();
  }

  /** Idempotent per (cycle, candidate id): a retried training step stores each candidate once. */
  async function saveCandidates(candidates: readonly Candidate[]): Promise<void> {
    if (candidates.length === 0) return;
    await db
      .insertInto("cycle_candidates")
      .values(
        candidates.map((candidate) => ({
          cycle_id: candidate.cycleId,
          id: candidate.id,
          content: JSON.stringify(candidate.content),
          strategy: candidate.strategy,
          rationale: candidate.rationale,
          details: JSON.stringify(candidate.details),
        })),
      )
      .onConflict((oc) => oc.columns(["cycle_id", "id"]).doNothing())
      .execute();
  }

  async function candidates(cycleId: string): Promise<Candidate[]> {
    const rows = await db.selectFrom("cycle_candidates").selectAll().where("cycle_id", "=", cycleId).orderBy("id").execute();
    return rows.map(fromCandidateRow);
  }

  async function candidate(cycleId: string, id: string): Promise<Candidate> {
    const row = await db.selectFrom("cycle_candidates").selectAll().where("cycle_id", "=", cycleId).where("id", "=", id).executeTakeFirst();
    if (!row) throw new NotFoundError(`Cycle "${cycleId}" has no candidate "${id}".`);
    return fromCandidateRow(row);
  }

  return { create, update, recordProgress, get, find, findMany, list, acquireLease, takeOverLease, leaseHolder, releaseLease, saveCandidates, candidates, candidate };
}

function fromRow(row: Selectable<CyclesTable>): Cycle {
  return {
    id: row.id,
    agent: row.agent,
    dataset: row.dataset,
    trigger: row.trigger,
    phase: row.phase,
    progress: row.progress,
    metrics: row.metrics,
    outcome: row.outcome,
    outcomeDetail: row.outcome_detail,
    incumbentVersion: row.incumbent_version,
    deployedVersion: row.deployed_version,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

function fromCandidateRow(row: Selectable<CycleCandidatesTable>): Candidate {
  return { cycleId: row.cycle_id, id: row.id, content: row.content, strategy: row.strategy, rationale: row.rationale, details: row.details };
}

/** The documented JSON form of a cycle (README: "JSON output"). */
export function cycleJson(cycle: Cycle) {
  return {
    id: cycle.id,
    agent: cycle.agent,
    dataset: cycle.dataset,
    trigger: cycle.trigger,
    phase: cycle.phase,
    outcome: cycle.outcome,
    outcomeDetail: cycle.outcomeDetail,
    incumbentVersion: cycle.incumbentVersion,
    deployedVersion: cycle.deployedVersion,
    startedAt: cycle.startedAt.toISOString(),
    finishedAt: cycle.finishedAt?.toISOString() ?? null,
    result: cycle.metrics,
  };
}

import { type Kysely, type Selectable, type Transaction, sql } from "kysely";
import { ConflictError, InvalidInputError, NotFoundError } from "./errors.ts";
import type { ResourceChanges } from "./resource-changes.ts";
import type { Database, PromptContent, ResourceEventKind, ResourceEventsTable, ResourceVersionsTable } from "./schema.ts";

export interface ResourceVersion {
  name: string;
  version: number;
  content: PromptContent;
  parentVersion: number | null;
  createdBy: string;
  createdAt: Date;
  metrics: Record<string, unknown>;
  note: string | null;
  labels: string[];
}

export interface ResourceEvent {
  id: number;
  name: string;
  kind: ResourceEventKind;
  label: string | null;
  fromVersion: number | null;
  toVersion: number | null;
  actor: string;
  reason: string | null;
  createdAt: Date;
}

export interface LabelMove {
  label: string;
  /** Compare-and-set: the version the label must point at now; `null` means the label must not exist yet. */
  expectedVersion: number | null;
}

export interface PublishInput {
  name: string;
  content: PromptContent;
  parentVersion: number | null;
  createdBy: string;
  metrics?: Record<string, unknown>;
  note?: string;
  /** A publish retried with the same key returns the version the first attempt created. */
  idempotencyKey?: string;
  labels?: LabelMove[];
  reason?: string;
}

export interface MoveLabelInput {
  name: string;
  label: string;
  toVersion: number;
  /** Omit to move the label whatever it points at now. */
  expectedVersion?: number | null;
  actor: string;
  reason?: string;
  /** Default: `rolled_back` when `production` moves to an older version, `labelled` otherwise. */
  kind?: ResourceEventKind;
  idempotencyKey?: string;
  /** The traffic share of a `canary` label; other labels carry none. */
  weight?: number;
}

export interface RollbackInput {
  name: string;
  /** Default `production`. */
  label?: string;
  /** Must be older than the version the label points at now. */
  toVersion: number;
  /** Compare-and-set: the version the caller saw the label at; default, whatever it points at when the transaction reads it. */
  expectedVersion?: number;
  actor: string;
  reason?: string;
  /** A rollback retried with the same key returns the move the first attempt made instead of failing. */
  idempotencyKey?: string;
}

/** What a label move did: the audit event it wrote and the version the label points at now. */
export interface LabelMoved {
  event: ResourceEvent;
  resource: ResourceVersion;
}

export const PRODUCTION = "production";
/** The label a canary version sits on, with its traffic weight. */
export const CANARY = "canary";

/** What a label may be called: short, URL- and shell-safe. */
export const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
export const LABEL_RULE = "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit";

type Db = Kysely<Database> | Transaction<Database>;

/** A resource's labels and the versions they point at, ordered by label. */
export interface LabelledVersion {
  label: string;
  version: ResourceVersion;
  /** The label's traffic weight (a canary's), else null. */
  weight: number | null;
}

/**
 * `changes.committed` runs after every successful publish, label move and rollback, before it returns:
 * processes serving copies from memory have dropped them by then (store/resource-changes.ts).
 */
export function resourcesStore(db: Kysely<Database>, changes: Pick<ResourceChanges, "committed">) {
  async function getVersion(name: string, version: number): Promise<ResourceVersion> {
    const row = await withLabels(db).where("v.name", "=", name).where("v.version", "=", version).executeTakeFirst();
    if (!row) throw await missingVersion(db, name, version);
    return toVersion(row, row.labels);
  }

  /** One round trip: agents poll this (GET /v1/resources/:name) far more often than anything else. */
  async function findByLabel(name: string, label: string): Promise<ResourceVersion | undefined> {
    const row = await withLabels(db)
      .innerJoin("resource_labels as target", (join) => join.onRef("target.name", "=", "v.name").onRef("target.version", "=", "v.version"))
      .where("target.name", "=", name)
      .where("target.label", "=", label)
      .executeTakeFirst();
    return row ? toVersion(row, row.labels) : undefined;
  }

  /** Every label of `name` with its version, in one round trip: what a copy in memory is loaded from. */
  async function labelled(name: string): Promise<LabelledVersion[]> {
    const rows = await withLabels(db)
      .innerJoin("resource_labels as target", (join) => join.onRef("target.name", "=", "v.name").onRef("target.version", "=", "v.version"))
      .select(["target.label as label", "target.weight as weight"])
      .where("target.name", "=", name)
      .orderBy("target.label")
      .execute();
    return rows.map((row) => ({ label: row.label, version: toVersion(row, row.labels), weight: row.weight }));
  }

  async function getByLabel(name: string, label: string): Promise<ResourceVersion> {
    const found = await findByLabel(name, label);
    if (!found) throw await missingLabel(db, name, label);
    return found;
  }

  async function findByIdempotencyKey(key: string): Promise<ResourceVersion | undefined> {
    const row = await withLabels(db).where("v.idempotency_key", "=", key).executeTakeFirst();
    return row ? toVersion(row, row.labels) : undefined;
  }

  async function listVersions(name: string): Promise<ResourceVersion[]> {
    const rows = await db.selectFrom("resource_versions").selectAll().where("name", "=", name).orderBy("version").execute();
    const labels = await db.selectFrom("resource_labels").select(["label", "version"]).where("name", "=", name).orderBy("label").execute();
    return rows.map((row) => toVersion(row, labels.filter((l) => l.version === row.version).map((l) => l.label)));
  }

  async function listNames(): Promise<string[]> {
    const rows = await db.selectFrom("resource_versions").select("name").distinct().orderBy("name").execute();
    return rows.map((row) => row.name);
  }

  /**
   * Appends a new immutable version and moves the given labels to it, all in one transaction: either
   * the version exists and every label points at it, or nothing was written.
   */
  async function publish(input: PublishInput): Promise<ResourceVersion> {
    if (input.idempotencyKey) {
      const existing = await findByIdempotencyKey(input.idempotencyKey);
      // A retry after a crash: the first attempt may have committed without waiting for the copies in memory.
      if (existing) {
        await changes.committed(input.name);
        return existing;
      }
    }
    const version = await db.transaction().execute(async (trx) => {
      // Serialises publishers of one name so version numbers stay dense and unique.
      await sql`SELECT pg_advisory_xact_lock(hashtext(${`resource:${input.name}`}))`.execute(trx);
      if (input.idempotencyKey) {
        const raced = await trx.selectFrom("resource_versions").select("version").where("idempotency_key", "=", input.idempotencyKey).executeTakeFirst();
        if (raced) return raced.version;
      }
      const next = ((await latestVersion(trx, input.name)) ?? 0) + 1;
      await trx
        .insertInto("resource_versions")
        .values({
          name: input.name,
          version: next,
          content: JSON.stringify(input.content),
          parent_version: input.parentVersion,
          created_by: input.createdBy,
          metrics: JSON.stringify(input.metrics ?? {}),
          note: input.note ?? null,
          idempotency_key: input.idempotencyKey ?? null,
        })
        .execute();
      await trx
        .insertInto("resource_events")
        .values({
          name: input.name,
          kind: "published",
          label: null,
          from_version: input.parentVersion,
          to_version: next,
          actor: input.createdBy,
          reason: input.reason ?? input.note ?? null,
        })
        .execute();
      for (const move of input.labels ?? []) {
        await moveLabelIn(trx, {
          name: input.name,
          label: move.label,
          toVersion: next,
          expectedVersion: move.expectedVersion,
          actor: input.createdBy,
          ...(input.reason ? { reason: input.reason } : {}),
        });
      }
      return next;
    });
    await changes.committed(input.name);
    return getVersion(input.name, version);
  }

  /** Moves (or creates) a label, compare-and-set when `expectedVersion` is given, and audits the move. */
  async function moveLabel(input: MoveLabelInput): Promise<LabelMoved> {
    const event = await db.transaction().execute((trx) => moveLabelIn(trx, input));
    await changes.committed(input.name);
    return { event, resource: await getVersion(input.name, input.toVersion) };
  }

  /**
   * Moves a label (default `production`) back to an earlier version, audited as `rolled_back`. A store
   * operation on purpose: it needs no Temporal, so a rollback works while everything else is down.
   */
  async function rollback(input: RollbackInput): Promise<LabelMoved> {
    const label = input.label ?? PRODUCTION;
    const event = await db.transaction().execute(async (trx) => {
      if (!(await versionExists(trx, input.name, input.toVersion))) throw await missingVersion(trx, input.name, input.toVersion);
      const current = await labelVersionForUpdate(trx, input.name, label);
      // Checked under the label's lock: a concurrent retry with the same key waits, then finds the first attempt's event.
      const earlier = input.idempotencyKey ? await eventByIdempotencyKey(trx, input.idempotencyKey) : undefined;
      if (earlier) return earlier;
      if (current === null) throw await missingLabel(trx, input.name, label);
      if (input.expectedVersion !== undefined && input.expectedVersion !== current) throw labelConflict(input.name, label, current, input.expectedVersion);
      if (input.toVersion >= current) {
        throw new InvalidInputError(
          `A rollback moves "${label}" of "${input.name}" to an earlier version: it points at version ${current}, and version ${input.toVersion} is not earlier. To move it forward, promote instead (agl prompts promote). Nothing was changed.`,
        );
      }
      return moveLabelIn(trx, {
        name: input.name,
        label,
        toVersion: input.toVersion,
        expectedVersion: current,
        actor: input.actor,
        kind: "rolled_back",
        ...(input.reason ? { reason: input.reason } : {}),
        ...(input.idempotencyKey ? { idempotencyKey: input.idempotencyKey } : {}),
      });
    });
    await changes.committed(input.name);
    return { event, resource: await getVersion(input.name, event.toVersion!) };
  }

  /** The audit trail, newest first. */
  async function events(name: string, limit = 200): Promise<ResourceEvent[]> {
    const rows = await db.selectFrom("resource_events").selectAll().where("name", "=", name).orderBy("id", "desc").limit(limit).execute();
    if (rows.length === 0) throw await missingVersion(db, name, 1);
    return rows.map(toEvent);
  }

  return { getVersion, labelled, getByLabel, findByLabel, findByIdempotencyKey, listVersions, listNames, publish, moveLabel, rollback, events };
}

/** Moves (or creates) a label inside the caller's transaction and audits the move. */
export async function moveLabelIn(trx: Transaction<Database>, input: MoveLabelInput): Promise<ResourceEvent> {
  if (!(await versionExists(trx, input.name, input.toVersion))) throw await missingVersion(trx, input.name, input.toVersion);
  const currentVersion = await labelVersionForUpdate(trx, input.name, input.label);
  if (input.expectedVersion !== undefined && input.expectedVersion !== currentVersion) {
    throw labelConflict(input.name, input.label, currentVersion, input.expectedVersion);
  }
  if (currentVersion !== null) {
    const updated = await trx
      .updateTable("resource_labels")
      .set({ version: input.toVersion, updated_at: new Date(), updated_by: input.actor, weight: input.weight ?? null })
      .where("name", "=", input.name)
      .where("label", "=", input.label)
      .where("version", "=", currentVersion)
      .executeTakeFirst();
    if (updated.numUpdatedRows !== 1n) throw new ConflictError(`Label "${input.label}" of "${input.name}" changed while moving it. Nothing was changed.`);
  } else {
    const inserted = await trx
      .insertInto("resource_labels")
      .values({ name: input.name, label: input.label, version: input.toVersion, updated_at: new Date(), updated_by: input.actor, weight: input.weight ?? null })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    if (inserted.numInsertedOrUpdatedRows !== 1n) throw new ConflictError(`Label "${input.label}" of "${input.name}" was created by someone else first. Nothing was changed.`);
  }
  const movesProductionBack = input.label === PRODUCTION && currentVersion !== null && input.toVersion < currentVersion;
  const event = await trx
    .insertInto("resource_events")
    .values({
      name: input.name,
      kind: input.kind ?? (movesProductionBack ? "rolled_back" : "labelled"),
      label: input.label,
      from_version: currentVersion,
      to_version: input.toVersion,
      actor: input.actor,
      reason: input.reason ?? null,
      idempotency_key: input.idempotencyKey ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toEvent(event);
}

/** Removes a label that points at `expectedVersion` (compare-and-set) inside the caller's transaction, audited as `kind` (to: nothing). */
export async function removeLabelIn(
  trx: Transaction<Database>,
  input: { name: string; label: string; expectedVersion: number; actor: string; reason: string; kind: ResourceEventKind; idempotencyKey?: string },
): Promise<ResourceEvent> {
  const current = await labelVersionForUpdate(trx, input.name, input.label);
  if (current !== input.expectedVersion) throw labelConflict(input.name, input.label, current, input.expectedVersion);
  await trx.deleteFrom("resource_labels").where("name", "=", input.name).where("label", "=", input.label).execute();
  const event = await trx
    .insertInto("resource_events")
    .values({
      name: input.name,
      kind: input.kind,
      label: input.label,
      from_version: current,
      to_version: null,
      actor: input.actor,
      reason: input.reason,
      idempotency_key: input.idempotencyKey ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toEvent(event);
}

export async function eventByIdempotencyKey(db: Db, key: string): Promise<ResourceEvent | undefined> {
  const row = await db.selectFrom("resource_events").selectAll().where("idempotency_key", "=", key).executeTakeFirst();
  return row ? toEvent(row) : undefined;
}

export async function versionExists(db: Db, name: string, version: number): Promise<boolean> {
  const row = await db.selectFrom("resource_versions").select("version").where("name", "=", name).where("version", "=", version).executeTakeFirst();
  return row !== undefined;
}

/** Locks the label's row until the transaction ends, so a concurrent move waits and then sees the new version. */
export async function labelVersionForUpdate(trx: Transaction<Database>, name: string, label: string): Promise<number | null> {
  const row = await trx.selectFrom("resource_labels").select("version").where("name", "=", name).where("label", "=", label).forUpdate().executeTakeFirst();
  return row?.version ?? null;
}

export async function missingVersion(db: Db, name: string, version: number): Promise<NotFoundError> {
  const latest = await latestVersion(db, name);
  return new NotFoundError(latest === null ? `Resource "${name}" does not exist.` : `Resource "${name}" has no version ${version} (versions 1-${latest} exist).`);
}

export async function missingLabel(db: Db, name: string, label: string): Promise<NotFoundError> {
  const labels = await db.selectFrom("resource_labels").select("label").where("name", "=", name).orderBy("label").execute();
  return missingLabelError(name, label, labels.map((l) => l.label));
}

/** `labels`: every label the resource has, ordered. */
export function missingLabelError(name: string, label: string, labels: string[]): NotFoundError {
  return new NotFoundError(
    labels.length === 0 ? `Resource "${name}" does not exist or has no labels.` : `Resource "${name}" has no label "${label}" (labels: ${labels.join(", ")}).`,
  );
}

export function labelConflict(name: string, label: string, currentVersion: number | null, expectedVersion: number | null): ConflictError {
  const describe = (version: number | null) => (version === null ? "nothing" : `version ${version}`);
  return new ConflictError(
    `Label "${label}" of "${name}" points at ${describe(currentVersion)}, not ${describe(expectedVersion)} as expected: someone moved it first. Nothing was changed.`,
  );
}

/** A version's row with every label pointing at it, sorted. */
function withLabels(db: Db) {
  return db
    .selectFrom("resource_versions as v")
    .selectAll("v")
    .select(sql<string[]>`coalesce((SELECT array_agg(l.label ORDER BY l.label) FROM resource_labels l WHERE l.name = v.name AND l.version = v.version), '{}')`.as("labels"));
}

async function latestVersion(db: Db, name: string): Promise<number | null> {
  const row = await db.selectFrom("resource_versions").select((eb) => eb.fn.max("version").as("latest")).where("name", "=", name).executeTakeFirst();
  return row?.latest ?? null;
}

export function toEvent(row: Selectable<ResourceEventsTable>): ResourceEvent {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    label: row.label,
    fromVersion: row.from_version,
    toVersion: row.to_version,
    actor: row.actor,
    reason: row.reason,
    createdAt: row.created_at,
  };
}

function toVersion(row: Selectable<ResourceVersionsTable>, labels: string[]): ResourceVersion {
  return {
    name: row.name,
    version: row.version,
    content: row.content,
    parentVersion: row.parent_version,
    createdBy: row.created_by,
    createdAt: row.created_at,
    metrics: row.metrics,
    note: row.note,
    labels,
  };
}

/** The documented JSON form of a version, shared by `agl prompts … --json` and the HTTP API (README: "JSON output"). */
export function versionJson(version: ResourceVersion) {
  return {
    name: version.name,
    version: version.version,
    labels: version.labels,
    parentVersion: version.parentVersion,
    createdBy: version.createdBy,
    createdAt: version.createdAt.toISOString(),
    note: version.note,
    metrics: version.metrics,
    content: version.content,
  };
}

export type ResourceVersionJson = ReturnType<typeof versionJson>;

/** The documented JSON form of an audit event (`agl prompts history --json`, `GET …/history`). */
export function eventJson(event: ResourceEvent) {
  return {
    id: event.id,
    name: event.name,
    kind: event.kind,
    label: event.label,
    fromVersion: event.fromVersion,
    toVersion: event.toVersion,
    actor: event.actor,
    reason: event.reason,
    createdAt: event.createdAt.toISOString(),
  };
}

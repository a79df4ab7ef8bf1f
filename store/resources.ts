import { type Kysely, type Selectable, type Transaction, sql } from "kysely";
import { ConflictError, NotFoundError } from "./errors.ts";
import type { Database, PromptContent, ResourceVersionsTable } from "./schema.ts";

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
  kind: "published" | "labelled" | "rolled_back";
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
  kind?: "labelled" | "rolled_back";
}

type Db = Kysely<Database> | Transaction<Database>;

export function resourcesStore(db: Kysely<Database>) {
  async function getVersion(name: string, version: number): Promise<ResourceVersion> {
    const row = await db.selectFrom("resource_versions").selectAll().where("name", "=", name).where("version", "=", version).executeTakeFirst();
    if (!row) {
      const latest = await latestVersion(db, name);
      throw new NotFoundError(
        latest === null ? `Resource "${name}" does not exist.` : `Resource "${name}" has no version ${version} (versions 1-${latest} exist).`,
      );
    }
    return toVersion(row, await labelsOf(db, name, version));
  }

  async function getByLabel(name: string, label: string): Promise<ResourceVersion> {
    const row = await db.selectFrom("resource_labels").select("version").where("name", "=", name).where("label", "=", label).executeTakeFirst();
    if (!row) {
      const labels = await db.selectFrom("resource_labels").select("label").where("name", "=", name).execute();
      throw new NotFoundError(
        labels.length === 0
          ? `Resource "${name}" does not exist or has no labels.`
          : `Resource "${name}" has no label "${label}" (labels: ${labels.map((l) => l.label).join(", ")}).`,
      );
    }
    return getVersion(name, row.version);
  }

  async function findByIdempotencyKey(key: string): Promise<ResourceVersion | undefined> {
    const row = await db.selectFrom("resource_versions").selectAll().where("idempotency_key", "=", key).executeTakeFirst();
    return row ? toVersion(row, await labelsOf(db, row.name, row.version)) : undefined;
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
      if (existing) return existing;
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
    return getVersion(input.name, version);
  }

  async function moveLabel(input: MoveLabelInput): Promise<ResourceVersion> {
    await db.transaction().execute((trx) => moveLabelIn(trx, input));
    return getVersion(input.name, input.toVersion);
  }

  async function events(name: string, limit = 200): Promise<ResourceEvent[]> {
    const rows = await db.selectFrom("resource_events").selectAll().where("name", "=", name).orderBy("id", "desc").limit(limit).execute();
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      kind: row.kind,
      label: row.label,
      fromVersion: row.from_version,
      toVersion: row.to_version,
      actor: row.actor,
      reason: row.reason,
      createdAt: row.created_at,
    }));
  }

  return { getVersion, getByLabel, findByIdempotencyKey, listVersions, listNames, publish, moveLabel, events };
}

async function moveLabelIn(trx: Transaction<Database>, input: MoveLabelInput): Promise<void> {
  const target = await trx
    .selectFrom("resource_versions")
    .select("version")
    .where("name", "=", input.name)
    .where("version", "=", input.toVersion)
    .executeTakeFirst();
  if (!target) throw new NotFoundError(`Resource "${input.name}" has no version ${input.toVersion}.`);

  const current = await trx
    .selectFrom("resource_labels")
    .select("version")
    .where("name", "=", input.name)
    .where("label", "=", input.label)
    .forUpdate()
    .executeTakeFirst();
  const currentVersion = current?.version ?? null;
  if (input.expectedVersion !== undefined && input.expectedVersion !== currentVersion) {
    throw new ConflictError(
      `Label "${input.label}" of "${input.name}" points at ${currentVersion === null ? "nothing" : `version ${currentVersion}`}, not ${
        input.expectedVersion === null ? "nothing" : `version ${input.expectedVersion}`
      } as expected: someone moved it first. Nothing was changed.`,
    );
  }
  if (current) {
    const updated = await trx
      .updateTable("resource_labels")
      .set({ version: input.toVersion, updated_at: new Date(), updated_by: input.actor })
      .where("name", "=", input.name)
      .where("label", "=", input.label)
      .where("version", "=", current.version)
      .executeTakeFirst();
    if (updated.numUpdatedRows !== 1n) throw new ConflictError(`Label "${input.label}" of "${input.name}" changed while moving it. Nothing was changed.`);
  } else {
    const inserted = await trx
      .insertInto("resource_labels")
      .values({ name: input.name, label: input.label, version: input.toVersion, updated_at: new Date(), updated_by: input.actor })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    if (inserted.numInsertedOrUpdatedRows !== 1n) throw new ConflictError(`Label "${input.label}" of "${input.name}" was created by someone else first. Nothing was changed.`);
  }
  await trx
    .insertInto("resource_events")
    .values({
      name: input.name,
      kind: input.kind ?? "labelled",
      label: input.label,
      from_version: currentVersion,
      to_version: input.toVersion,
      actor: input.actor,
      reason: input.reason ?? null,
    })
    .execute();
}

async function latestVersion(db: Db, name: string): Promise<number | null> {
  const row = await db.selectFrom("resource_versions").select((eb) => eb.fn.max("version").as("latest")).where("name", "=", name).executeTakeFirst();
  return row?.latest ?? null;
}

async function labelsOf(db: Db, name: string, version: number): Promise<string[]> {
  const rows = await db.selectFrom("resource_labels").select("label").where("name", "=", name).where("version", "=", version).orderBy("label").execute();
  return rows.map((row) => row.label);
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

import { type Kysely, sql } from "kysely";
import type { Database } from "./schema.ts";

/** A submission's tasks live in a data set of their own: `submission-<submission id>`. */
export function submissionDataset(submissionId: string): string {
  return `submission-${submissionId}`;
}

export function submissionsStore(db: Kysely<Database>) {
  /** The submission ids stored for the same tasks: `baseId` (generation 1), then `baseId-g2`, `baseId-g3`… in order. */
  async function generations(baseId: string): Promise<string[]> {
    const first = submissionDataset(baseId);
    const rows = await db
      .selectFrom("datasets")
      .select("name")
      .where((eb) => eb.or([eb("name", "=", first), eb(sql<boolean>`starts_with(name, ${`${first}-g`})`, "=", true)]))
      .execute();
    return rows
      .map((row) => row.name.slice("submission-".length))
      .filter((id) => id === baseId || /^-g\d+$/.test(id.slice(baseId.length)))
      .sort((a, b) => generationOf(a, baseId) - generationOf(b, baseId));
  }

  /** How many of the submission's rollouts are stored, and how many of those failed. */
  async function storedRollouts(submissionId: string): Promise<{ stored: number; failed: number }> {
    const row = await db
      .selectFrom("rollouts")
      .select((eb) => [eb.fn.countAll<number>().as("stored"), eb.fn.countAll<number>().filterWhere("status", "=", "failed").as("failed")])
      .where("dataset", "=", submissionDataset(submissionId))
      .where("cycle_id", "is", null)
      .executeTakeFirstOrThrow();
    return { stored: Number(row.stored), failed: Number(row.failed) };
  }

  return { generations, storedRollouts };
}

export function generationOf(submissionId: string, baseId: string): number {
  return submissionId === baseId ? 1 : Number(submissionId.slice(baseId.length + 2));
}

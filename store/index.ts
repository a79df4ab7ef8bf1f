import type { Kysely } from "kysely";
import type pg from "pg";
import { analysisStore } from "./analysis.ts";
import { canariesStore } from "./canaries.ts";
import { cyclesStore } from "./cycles.ts";
import { dashboardStore } from "./dashboard.ts";
import { createDatabase, createPool, migrateToLatest, type PgConnection } from "./database.ts";
import { datasetsStore } from "./datasets.ts";
import { type ResourceChanges, resourceChanges } from "./resource-changes.ts";
import { resourcesStore } from "./resources.ts";
import { rolloutsStore } from "./rollouts.ts";
import type { Database } from "./schema.ts";
import { submissionsStore } from "./submissions.ts";
import { tracesStore } from "./traces.ts";
import { webhooksStore } from "./webhooks.ts";

export interface Store {
  readonly db: Kysely<Database>;
  readonly resources: ReturnType<typeof resourcesStore>;
  /** Publishes and label moves, as they commit here or elsewhere (README: "Prompt serving from memory"). */
  readonly resourceChanges: ResourceChanges;
  readonly datasets: ReturnType<typeof datasetsStore>;
  readonly rollouts: ReturnType<typeof rolloutsStore>;
  readonly cycles: ReturnType<typeof cyclesStore>;
  readonly traces: ReturnType<typeof tracesStore>;
  readonly submissions: ReturnType<typeof submissionsStore>;
  readonly analysis: ReturnType<typeof analysisStore>;
  readonly dashboard: ReturnType<typeof dashboardStore>;
  readonly canaries: ReturnType<typeof canariesStore>;
  readonly webhooks: ReturnType<typeof webhooksStore>;
  close(): Promise<void>;
}

/** Connects to PostgreSQL (or an embedded PGlite served over the wire protocol) and migrates to the latest schema. */
export async function connectStore(connection: PgConnection, options: { poolSize?: number; onClose?: () => Promise<void> } = {}): Promise<Store> {
  const pool: pg.Pool = createPool(connection, options.poolSize);
  const db = createDatabase(pool);
  try {
    await migrateToLatest(db);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  const changes = resourceChanges(db, connection);
  return {
    db,
    resources: resourcesStore(db, changes),
    resourceChanges: changes,
    datasets: datasetsStore(db),
    rollouts: rolloutsStore(db),
    cycles: cyclesStore(db),
    traces: tracesStore(db, pool),
    submissions: submissionsStore(db),
    analysis: analysisStore(db),
    dashboard: dashboardStore(db),
    canaries: canariesStore(db, changes),
    webhooks: webhooksStore(db),
    async close() {
      await changes.close();
      await db.destroy();
      await options.onClose?.();
    },
  };
}

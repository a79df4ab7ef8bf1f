import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { inject } from "vitest";
import type { PgConnection } from "../../store/database.ts";
import { connectStore, type Store } from "../../store/index.ts";
import { servePGlite } from "../../store/pglite-server.ts";
import { createScratchDatabase, type ScratchDatabase } from "./scratch-database.ts";

export const BACKENDS = ["pglite", "postgres"] as const;
export type Backend = (typeof BACKENDS)[number];

export interface TestStore {
  store: Store;
  /** How another process (a worker child) reaches the same database. */
  connection: PgConnection;
  close(): Promise<void>;
}

/** A fresh, migrated database on the given backend, private to the caller. */
export async function openTestStore(backend: Backend): Promise<TestStore> {
  return backend === "pglite" ? openPGliteStore() : openPostgresStore();
}

async function openPGliteStore(): Promise<TestStore> {
  const db = new PGlite({ loadDataDir: new Blob([readFileSync(inject("pgliteTemplatePath"))]) });
  const socketDir = mkdtempSync(join(tmpdir(), "agl-pgs-"));
  const server = await servePGlite(db, { socketDir });
  const store = await connectStore(server.connection);
  return {
    store,
    connection: server.connection,
    async close() {
      await store.close();
      await server.close();
      await db.close();
      rmSync(socketDir, { recursive: true, force: true });
    },
  };
}

/** A fresh, empty database on the test PostgreSQL. */
export function createTestDatabase(prefix: string): Promise<ScratchDatabase> {
  return createScratchDatabase(inject("postgresAdminUrl"), prefix);
}

async function openPostgresStore(): Promise<TestStore> {
  const database = await createTestDatabase("agl_test");
  const store = await connectStore(database.url);
  return {
    store,
    connection: database.url,
    async close() {
      await store.close();
      await database.drop();
    },
  };
}

import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { inject } from "vitest";
import type { PgConnection } from "../../store/database.ts";
import { connectStore, type Store } from "../../store/index.ts";
import { servePGlite } from "../../store/pglite-server.ts";

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

async function openPostgresStore(): Promise<TestStore> {
  const adminUrl = inject("postgresAdminUrl");
  const name = `agl_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const store = await connectStore(url.toString());
  return {
    store,
    connection: url.toString(),
    async close() {
      await store.close();
      const cleanup = new pg.Client({ connectionString: adminUrl });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
    },
  };
}

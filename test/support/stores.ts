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

/** A fresh, empty database on the test PostgreSQL; `drop` removes it even while connections are open. */
export async function createTestDatabase(prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  const adminUrl = inject("postgresAdminUrl");
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const admin = async (sql: string) => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
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

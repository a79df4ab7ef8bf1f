import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import pg from "pg";
import { inject } from "vitest";
import { createTestDatabase } from "../support/stores.ts";

/** The project root: the CLI under test is bin/agl.js run by the project's own Node 24. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const NODE = join(ROOT, "node_modules/.bin/node");
const AGL = join(ROOT, "bin/agl.js");
export const BUNDLED_POSTS = join(ROOT, "agents/post-analyzer/data/posts.jsonl");

export interface AglResult {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
}

export interface AglOptions {
  env: Record<string, string>;
  /** Working directory; a fresh temporary one by default, so no agl.config.json is picked up by accident. */
  cwd?: string;
  timeoutMs?: number;
}

/**
 * An environment built from scratch: nothing from the outer environment (AGL_*, DATABASE_URL,
 * TEMPORAL_ADDRESS) leaks into the command under test, only PATH and HOME.
 */
export function cleanEnv(settings: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? tmpdir(), ...settings };
}

/**
 * One empty folder, shared and never written to (every env names its own AGL_DATA_DIR), so runs do not
 * pile up temporary folders; tests that need a project folder pass `cwd` themselves.
 */
function defaultCwd(): string {
  const dir = join(tmpdir(), "agl-cli-test-cwd");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Starts `agl ARGS` as a real subprocess; the promise resolves (never rejects) when it exits. */
export function spawnAgl(args: string[], options: AglOptions) {
  return execa(NODE, [AGL, ...args], {
    env: options.env,
    extendEnv: false,
    cwd: options.cwd ?? defaultCwd(),
    stdin: "ignore",
    reject: false,
    timeout: options.timeoutMs ?? 30_000,
    forceKillAfterDelay: 5_000,
    stripFinalNewline: false,
  });
}

export async function agl(args: string[], options: AglOptions): Promise<AglResult> {
  return finished(await spawnAgl(args, options));
}

export function finished(result: { exitCode?: number; stdout: unknown; stderr: unknown; timedOut?: boolean }): AglResult {
  if (result.timedOut) throw new Error(`agl timed out; stderr:\n${String(result.stderr)}`);
  return { exitCode: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** Parses stdout as JSON, with the whole output in the failure message when it is not. */
export function json<T = any>(result: AglResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${result.exitCode}):\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function uniqueQueue(): string {
  return `cli-test-${randomBytes(4).toString("hex")}`;
}

/** A private PostgreSQL database for one test file, dropped (connections and all) by close(). */
export interface PrivateDatabase {
  url: string;
  /** Runs SQL against the database directly: what is stored, independent of the CLI. */
  query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>;
  count(table: string, where?: string, values?: unknown[]): Promise<number>;
  close(): Promise<void>;
}

export async function createPrivateDatabase(): Promise<PrivateDatabase> {
  const database = await createTestDatabase("agl_cli");
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  const query = async <R extends Record<string, unknown>>(text: string, values: unknown[] = []) => (await client.query(text, values)).rows as R[];
  return {
    url: database.url,
    query,
    async count(table, where, values = []) {
      // Before the CLI first migrates the database the table does not exist: nothing is stored.
      const exists = await query<{ found: string | null }>("SELECT to_regclass($1) AS found", [table]);
      if (!exists[0]?.found) return 0;
      const rows = await query<{ n: string }>(`SELECT count(*) AS n FROM ${table}${where ? ` WHERE ${where}` : ""}`, values);
      return Number(rows[0]!.n);
    },
    async close() {
      await client.end();
      await database.drop();
    },
  };
}

/** Settings for scaled mode: the shared Temporal dev server, a queue of one's own, a private database. */
export function scaledEnv(database: PrivateDatabase, extra: Record<string, string> = {}): Record<string, string> {
  return cleanEnv({
    AGL_DATA_DIR: tempDir("agl-cli-data-"),
    AGL_MODEL: "fake",
    TEMPORAL_ADDRESS: inject("temporalAddress"),
    AGL_TASK_QUEUE: uniqueQueue(),
    DATABASE_URL: database.url,
    ...extra,
  });
}

/** Settings for embedded mode: only a data folder; the CLI starts PGlite and a Temporal dev server itself. */
export function embeddedEnv(dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return cleanEnv({ AGL_DATA_DIR: dataDir, AGL_MODEL: "fake", ...extra });
}

/** The bundled posts, one parsed task a line. */
export function bundledTasks(): { id: string; input: Record<string, unknown>; expected: Record<string, unknown>; split: string }[] {
  return readFileSync(BUNDLED_POSTS, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line));
}

/** Writes a JSONL data set file with the first `train` training and `validation` validation posts. */
export function writeMiniDataset(dir: string, name: string, train: number, validation: number): string {
  const all = bundledTasks();
  const tasks = [...all.filter((t) => t.split === "train").slice(0, train), ...all.filter((t) => t.split === "validation").slice(0, validation)];
  const file = join(dir, name);
  writeFileSync(file, tasks.map((task) => JSON.stringify(task)).join("\n") + "\n");
  return file;
}

/** Processes whose command line contains every one of `parts` (read from /proc, as `ps` would). */
export function processesWith(...parts: string[]): { pid: number; cmdline: string[] }[] {
  const found: { pid: number; cmdline: string[] }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string[];
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (parts.every((part) => cmdline.includes(part))) found.push({ pid: Number(entry), cmdline });
  }
  return found;
}

/** Polls `probe` until it returns a value, or fails with the last observation after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

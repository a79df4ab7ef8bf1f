import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { loadConfig } from "../../config/load.ts";
import { openRuntime, type Runtime } from "../../runtime/runtime.ts";
import { freePort } from "../../runtime/temporal-dev-server.ts";
import { connectStore, type Store } from "../../store/index.ts";
import { agl, cleanEnv, createPrivateDatabase, type PrivateDatabase, removeDir, spawnAgl, tempDir, uniqueQueue, waitFor } from "../cli/support.ts";
import { postAnalyzerPrompt, publishPostAnalyzer } from "./support.ts";

/**
 * The guarantee across processes: `agl up` serves prompts from memory; another process commits a rollback
 * (`agl prompts rollback`), a promotion or a publish; the first request sent after that command exited
 * gets the new version. On PGlite the HTTP server is not even the process owning the data folder (this
 * test process is), so it hears of a third process's writes only through the owner's wire server.
 */
const NAME = postAnalyzer.prompt.resource;
const variant = (technology: string) => postAnalyzerPrompt(`- technology: ${technology}\n- startups: founders\n- product_management: roadmaps\n- general: anything else`);

interface Setup {
  env: Record<string, string>;
  store: Store;
  close(): Promise<void>;
}

const setups: Record<"pglite" | "postgres", () => Promise<Setup>> = {
  async pglite() {
    const dataDir = tempDir("agl-serving-pglite-");
    const env = cleanEnv({ AGL_DATA_DIR: dataDir, AGL_MODEL: "fake", TEMPORAL_ADDRESS: inject("temporalAddress"), AGL_TASK_QUEUE: uniqueQueue() });
    const owner: Runtime = await openRuntime(loadConfig({ env }), { store: true, command: "test: owner of the data folder" });
    expect(owner.ownsEmbedded).toBe(true);
    return {
      env,
      store: owner.store,
      async close() {
        await owner.close();
        removeDir(dataDir);
      },
    };
  },
  async postgres() {
    const database: PrivateDatabase = await createPrivateDatabase();
    const dataDir = tempDir("agl-serving-pg-");
    const env = cleanEnv({ AGL_DATA_DIR: dataDir, AGL_MODEL: "fake", TEMPORAL_ADDRESS: inject("temporalAddress"), AGL_TASK_QUEUE: uniqueQueue(), DATABASE_URL: database.url });
    const store = await connectStore(database.url);
    return {
      env,
      store,
      async close() {
        await store.close();
        await database.close();
        removeDir(dataDir);
      },
    };
  },
};

describe.each(["pglite", "postgres"] as const)("agl up serving prompts from memory, changed by other processes, on %s", (backend) => {
  let setup: Setup;
  let up: ReturnType<typeof spawnAgl>;
  let url: string;

  beforeAll(async () => {
    setup = await setups[backend]();
    await publishPostAnalyzer(setup.store, [postAnalyzer.prompt.seed, variant("code"), variant("chips")]);
    const port = await freePort();
    up = spawnAgl(["up"], { env: { ...setup.env, AGL_PORT: String(port) }, timeoutMs: 240_000 });
    url = `http://127.0.0.1:${port}/v1/resources/${NAME}`;
    await waitFor("agl up to answer", async () => ((await fetch(url).catch(() => undefined))?.ok ? true : undefined), 90_000);
  });
  afterAll(async () => {
    up?.kill("SIGTERM");
    await up;
    await setup?.close();
  });

  async function servedVersion(etag?: string): Promise<{ status: number; version?: number; etag: string | null }> {
    const response = await fetch(url, etag ? { headers: { "if-none-match": etag } } : {});
    const body = response.status === 200 ? ((await response.json()) as { version: number }) : undefined;
    return { status: response.status, ...(body ? { version: body.version } : {}), etag: response.headers.get("etag") };
  }

  test("the first request after `agl prompts rollback`, `promote` or `publish` returned gets the new version", async () => {
    const before = await servedVersion();
    expect(before).toMatchObject({ status: 200, version: 3 });
    // Answered from memory from now on, 304 included.
    expect(await servedVersion(before.etag!)).toMatchObject({ status: 304, etag: before.etag });

    const rolledBack = await agl(["prompts", "rollback", NAME, "--to", "2", "--reason", "from another process"], { env: setup.env });
    expect(rolledBack.exitCode, rolledBack.stderr).toBe(0);
    const afterRollback = await servedVersion(before.etag!);
    expect(afterRollback).toMatchObject({ status: 200, version: 2 });

    const promoted = await agl(["prompts", "promote", NAME, "--version", "3", "--label", "production"], { env: setup.env });
    expect(promoted.exitCode, promoted.stderr).toBe(0);
    expect(await servedVersion(afterRollback.etag!)).toMatchObject({ status: 200, version: 3 });

    const file = join(setup.env.AGL_DATA_DIR!, "v4.json");
    writeFileSync(file, JSON.stringify(variant("silicon")));
    const published = await agl(["prompts", "publish", NAME, "--file", file, "--label", "production", "--parent", "3"], { env: setup.env });
    expect(published.exitCode, published.stderr).toBe(0);
    expect(await servedVersion()).toMatchObject({ status: 200, version: 4 });

    // And a change committed by this test process's own store, which is not agl up's either.
    await setup.store.resources.rollback({ name: NAME, toVersion: 1, actor: "test" });
    expect(await servedVersion()).toMatchObject({ status: 200, version: 1 });
  });
});

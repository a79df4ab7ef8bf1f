import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, describe, expect, test } from "vitest";
import { type EmbeddedStore, openEmbeddedStore } from "../../store/embedded-store.ts";
import { connectStore } from "../../store/index.ts";

const scratch = mkdtempSync(join(tmpdir(), "agl-embedded-"));
const QUERY_FROM_THREAD = new URL("../fixtures/query-from-thread.ts", import.meta.url);
/** Only bounds the failure case: a store on the blocked thread never answers, and the wait gives up. */
const BLOCKED_FOR_AT_MOST_MS = 60_000;

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("the embedded store (PGlite in the data folder)", () => {
  test("answers other clients while the owner's main thread is blocked, and keeps what was written across a close", async () => {
    const dataPath = join(scratch, "blocked-owner");
    mkdirSync(dataPath);
    let embedded: EmbeddedStore | undefined = await openEmbeddedStore(dataPath, { drainMs: 0 });
    try {
      const store = await connectStore(embedded.connection);
      await store.datasets.importTasks({ name: "kept", agent: "any", source: "test", tasks: [{ id: "t1", input: { text: "x" }, expected: null, split: "train" }], replace: true });
      await store.close();

      const flag = new Int32Array(new SharedArrayBuffer(4));
      const client = new Worker(QUERY_FROM_THREAD, { workerData: { connection: embedded.connection, flag } });
      // Blocks this thread's event loop (as a long synchronous scorer would) until the other client's query is answered.
      const waited = Atomics.wait(flag, 0, 0, BLOCKED_FOR_AT_MOST_MS);
      await new Promise((resolve) => client.once("exit", resolve));
      expect({ waited, answer: Atomics.load(flag, 0) }).toEqual({ waited: "ok", answer: 1 });

      await embedded.close();
      embedded = await openEmbeddedStore(dataPath, { drainMs: 0 });
      const reopened = await connectStore(embedded.connection);
      expect((await reopened.datasets.tasks("kept", ["t1"])).map((task) => task.id)).toEqual(["t1"]);
      await reopened.close();
    } finally {
      await embedded?.close();
    }
  }, 120_000);

  test("a folder PGlite cannot open fails the open with the folder and PGlite's reason", async () => {
    const dataPath = join(scratch, "not-a-database");
    mkdirSync(dataPath, { recursive: true });
    writeFileSync(join(dataPath, "pglite"), "a file where the database folder should be");
    await expect(openEmbeddedStore(dataPath, { drainMs: 0 })).rejects.toThrow(`Could not open PGlite in ${dataPath}`);
  }, 60_000);
});

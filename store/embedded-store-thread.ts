// The thread `openEmbeddedStore` (./embedded-store.ts) runs PGlite and its wire server on.
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parentPort, workerData } from "node:worker_threads";
import { PGlite } from "@electric-sql/pglite";
import { servePGlite } from "./pglite-server.ts";

export interface EmbeddedStoreThreadData {
  dataPath: string;
  drainMs: number;
}

/** Opening answers `ready` or `failed`; closing (the message "close") answers `closed` or `failed`. */
/** A failure travels as its message and stack: an error object may hold what cannot be posted to another thread. */
export type EmbeddedStoreThreadMessage = { ready: { host: string; port: number } } | { closed: true } | { failed: { message: string; stack?: string } };

const { dataPath, drainMs } = workerData as EmbeddedStoreThreadData;
const port = parentPort!;
const pglite = new PGlite(join(dataPath, "pglite"));

try {
  await pglite.waitReady;
  const server = await servePGlite(pglite, { socketDir: join(dataPath, "run") });
  port.once("message", async () => {
    try {
      // Other agl processes may be in the middle of a command: give them a moment before the database goes
      // away (a long-lived peer such as `agl worker` loses it after the grace period).
      const deadline = Date.now() + drainMs;
      while (server.stats().connections > 0 && Date.now() < deadline) await sleep(100);
      await server.close();
      await pglite.close();
      port.postMessage({ closed: true } satisfies EmbeddedStoreThreadMessage);
    } catch (error) {
      port.postMessage({ failed: described(error) } satisfies EmbeddedStoreThreadMessage);
    }
    port.close();
  });
  port.postMessage({ ready: server.connection } satisfies EmbeddedStoreThreadMessage);
} catch (error) {
  await pglite.close().catch(() => undefined);
  port.postMessage({ failed: described(error) } satisfies EmbeddedStoreThreadMessage);
  port.close();
}

function described(error: unknown): { message: string; stack?: string } {
  return error instanceof Error ? { message: error.message, ...(error.stack ? { stack: error.stack } : {}) } : { message: String(error) };
}

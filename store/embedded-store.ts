import { once } from "node:events";
import { Worker } from "node:worker_threads";
import type { EmbeddedStoreThreadData, EmbeddedStoreThreadMessage } from "./embedded-store-thread.ts";

export interface EmbeddedStore {
  /** The unix socket's directory and port: every client, the owner process's own included, connects there. */
  readonly connection: { host: string; port: number };
  close(): Promise<void>;
}

/**
 * PGlite in the data folder, served over the PostgreSQL wire protocol to this process and the others, from a
 * thread of its own (README: "Architecture"). PGlite executes every statement on the thread that holds it; on
 * the owner's main thread that CPU queued behind the agent runs, scorers and HTTP handlers, and they behind it.
 * `drainMs`: how long closing waits for other processes' connections to end.
 */
export async function openEmbeddedStore(dataPath: string, options: { drainMs: number }): Promise<EmbeddedStore> {
  const thread = new Worker(new URL("./embedded-store-thread.ts", import.meta.url), { workerData: { dataPath, drainMs: options.drainMs } satisfies EmbeddedStoreThreadData });
  const answer = () =>
    new Promise<EmbeddedStoreThreadMessage>((resolve, reject) => {
      const exited = (code: number) => reject(new Error(`The embedded store's thread (PGlite in ${dataPath}) exited with code ${code} before it answered.`));
      const settle = (message: EmbeddedStoreThreadMessage) => {
        thread.off("error", reject);
        thread.off("exit", exited);
        resolve(message);
      };
      thread.once("error", reject);
      thread.once("exit", exited);
      thread.once("message", settle);
    });
  const opened = await answer();
  if (!("ready" in opened)) {
    await once(thread, "exit");
    throw "failed" in opened ? rebuilt(opened.failed, `Could not open PGlite in ${dataPath}`) : new Error("The embedded store's thread answered out of turn.");
  }
  // Once open, the store failing is the process failing, as when PGlite ran on the main thread.
  const crash = (error: unknown) => {
    throw error;
  };
  thread.on("error", crash);
  return {
    connection: opened.ready,
    async close() {
      thread.off("error", crash);
      const closed = answer();
      thread.postMessage("close");
      const message = await closed;
      if ("failed" in message) throw rebuilt(message.failed, `Could not close PGlite in ${dataPath}`);
      await once(thread, "exit");
    },
  };
}

function rebuilt(failure: { message: string; stack?: string }, context: string): Error {
  const error = new Error(`${context}: ${failure.message}`);
  if (failure.stack) error.stack = `${error.message}\n(on the embedded store's thread) ${failure.stack}`;
  return error;
}

import type { Command } from "commander";
import { describeModel } from "../agents/models/index.ts";
import { ConflictError } from "../store/errors.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";

export function registerUpCommand(program: Command): void {
  program
    .command("up")
    .description("serve everything until stopped: the HTTP API, a worker, and (embedded) PGlite and the Temporal dev server")
    .action(async (_options: unknown, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      await withRuntime(config, { store: true, temporal: true, command: "agl up" }, async (runtime) => {
        if (runtime.peer?.http) throw new ConflictError(`agl up already runs (pid ${runtime.peer.pid}) at ${runtime.peer.http.url}.`);
        // Loaded here: the server (OTLP decoding among it) and the worker cost every other command ~0.5 s to import.
        const [{ startWorker }, { createServerApp, startHttpServer }, { serverRoutes }] = await Promise.all([import("../runtime/worker.ts"), import("../server/app.ts"), import("../server/routes.ts")]);
        const worker = await startWorker({ config, store: runtime.store, address: runtime.temporal.address });
        runtime.defer(() => worker.stop());
        const temporal = { client: runtime.temporal.client, ...(runtime.temporal.uiUrl ? { uiUrl: runtime.temporal.uiUrl } : {}) };
        const app = createServerApp({ config, store: runtime.store, temporal }, serverRoutes);
        const http = await startHttpServer(app, { host: config.server.host, port: config.server.port });
        runtime.defer(() => http.close());
        runtime.owner?.update({ worker: true, http: { url: http.url } });
        process.stderr.write(
          [
            `agl up: ${http.url}`,
            `  dashboard ${http.url}/${config.server.token ? " (sign in with the token at /login)" : ""}`,
            `  worker    task queue "${config.temporal.taskQueue}", model ${describeModel(config)}`,
            `  data      ${runtime.describe()}`,
            "Press Ctrl-C to stop.",
            "",
          ].join("\n"),
        );
        await worker.done;
      });
    });
}

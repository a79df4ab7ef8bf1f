import type { Command } from "commander";
import { describeModel } from "../agents/models/index.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";

export function registerWorkerCommand(program: Command): void {
  program
    .command("worker")
    .description("run a worker: executes cycles (workflows) and agent batches (activities) until stopped")
    .action(async (_options: unknown, command: Command) => {
      const config = configFrom(command.optsWithGlobals<GlobalOptions>());
      await withRuntime(config, { store: true, temporal: true, command: "agl worker" }, async (runtime) => {
        // Loaded on demand, so that the other commands start without the worker SDK and Mastra.
        const { startWorker } = await import("../runtime/worker.ts");
        const worker = await startWorker({ config, store: runtime.store, address: runtime.temporal.address });
        runtime.owner?.update({ worker: true });
        process.stderr.write(
          `Worker polling task queue "${config.temporal.taskQueue}" (namespace ${config.temporal.namespace}), model ${describeModel(config)}\n${runtime.describe()}\nPress Ctrl-C to stop.\n`,
        );
        await worker.done;
      });
    });
}

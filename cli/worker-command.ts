import type { Command } from "commander";
import { describeModel } from "../agents/models/index.ts";
import { startWorkerHere } from "../runtime/cycles.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";

export function registerWorkerCommand(program: Command): void {
  program
    .command("worker")
    .description("run a worker: executes cycles (workflows) and agent batches (activities) until stopped")
    .action(async (_options: unknown, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      await withRuntime(config, { store: true, temporal: true, command: "agl worker" }, async (runtime) => {
        const worker = await startWorkerHere(runtime);
        process.stderr.write(
          `Worker polling task queue "${config.temporal.taskQueue}" (namespace ${config.temporal.namespace}), model ${describeModel(config)}\n${runtime.describe()}\nPress Ctrl-C to stop.\n`,
        );
        await worker.done;
      });
    });
}

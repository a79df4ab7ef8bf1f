import { type LoadedConfig, loadProject } from "../config/load.ts";
import { openRuntime, type Runtime, type RuntimeNeeds } from "../runtime/runtime.ts";

export interface GlobalOptions {
  config?: string;
  dataDir?: string;
}

/** The project's configuration and agents (agl.config.ts, .js, .mjs or .json; --config FILE). */
export function configFrom(options: GlobalOptions): Promise<LoadedConfig> {
  return loadProject({
    ...(options.config ? { file: options.config } : {}),
    ...(options.dataDir ? { overrides: { dataDir: options.dataDir } } : {}),
  });
}

const openRuntimes = new Set<Runtime>();

/** Opens what a command needs and closes it afterwards, also when the user presses Ctrl-C. */
export async function withRuntime<T>(config: LoadedConfig, needs: RuntimeNeeds, work: (runtime: Runtime) => Promise<T>): Promise<T> {
  const runtime = await openRuntime(config, needs);
  openRuntimes.add(runtime);
  try {
    return await work(runtime);
  } finally {
    openRuntimes.delete(runtime);
    await runtime.close();
  }
}

let stopping = false;

/** First Ctrl-C: stop cleanly (embedded services too); a second one exits at once. */
export function installSignalHandlers(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(130);
      stopping = true;
      process.stderr.write("\nStopping… (press Ctrl-C again to exit at once)\n");
      void Promise.allSettled([...openRuntimes].map((runtime) => runtime.close())).then(() => process.exit(130));
    });
  }
}

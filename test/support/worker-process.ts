import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { inject } from "vitest";
import type { TestStore } from "./stores.ts";

const NODE = fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url));
const WORKER = fileURLToPath(new URL("../fixtures/worker-process.ts", import.meta.url));

/**
 * Starts test/fixtures/worker-process.ts, a worker in a process of its own that a test can SIGKILL like a
 * crashed machine; `children` gets it at once, so an afterEach can kill it whatever happens. With
 * `gate`, its model calls wait until that file exists. Resolves once the worker polls, with the child
 * in a wrapper (an execa child is a thenable of its exit).
 */
export async function spawnWorker(
  children: ResultPromise[],
  overrides: Record<string, unknown>,
  connection: TestStore["connection"],
  latencyMs: number,
  /** gate: a file every model call waits for; runLog: a file that gets one line per agent run (see test/fixtures/worker-process.ts). */
  options: { gate?: string; runLog?: string } = {},
): Promise<{ child: ResultPromise }> {
  const child = execa(NODE, [WORKER], {
    env: {
      AGL_TEST_CONFIG: JSON.stringify(overrides),
      AGL_TEST_STORE: JSON.stringify(connection),
      AGL_TEST_BUNDLE: inject("workflowBundlePath"),
      AGL_TEST_LATENCY_MS: String(latencyMs),
      ...(options.gate ? { AGL_TEST_GATE: options.gate } : {}),
      ...(options.runLog ? { AGL_TEST_RUN_LOG: options.runLog } : {}),
    },
    reject: false,
    stdout: "pipe",
    stderr: "pipe",
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => chunk.toString().includes("ready") && resolve());
    child.then((result) => reject(new Error(`worker exited before it was ready: ${result.stderr}`)));
  });
  return { child };
}

/** For an afterEach: kills every worker child still running and waits until each has exited. */
export async function killWorkers(children: ResultPromise[]): Promise<void> {
  for (const child of children) child.kill("SIGKILL");
  await Promise.allSettled(children);
  children.length = 0;
}

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { loadConfig } from "../../config/load.ts";
import { createServerApp, type RunningHttpServer, startHttpServer } from "../../server/app.ts";
import { serverRoutes } from "../../server/routes.ts";
import type { Store } from "../../store/index.ts";
import type { PromptContent } from "../../store/schema.ts";
import { bundledAgents } from "../../agents/examples.ts";

/** The resources API as `agl up` serves it (every registered route module), on a free loopback port. */
export async function startApiServer(store: Store, server: { token?: string } = {}): Promise<RunningHttpServer> {
  const config = loadConfig({ env: {}, agents: bundledAgents, overrides: { server } });
  return startHttpServer(createServerApp({ config, store }, serverRoutes), { host: "127.0.0.1", port: 0 });
}

/** The post analyzer's seed with `categories` described differently, so each version is told apart by what the agent answers. */
export function postAnalyzerPrompt(categories: string): PromptContent {
  return { engine: "placeholders", components: { ...postAnalyzer.prompt.seed.components, categories } };
}

/** Publishes the given versions of the post analyzer's prompt in order, `production` moving to each. */
export async function publishPostAnalyzer(store: Store, versions: PromptContent[]): Promise<void> {
  for (const [index, content] of versions.entries()) {
    await store.resources.publish({
      name: postAnalyzer.prompt.resource,
      content,
      parentVersion: index === 0 ? null : index,
      createdBy: "test",
      labels: [{ label: "production", expectedVersion: index === 0 ? null : index }],
    });
  }
}

/** Temporary folders for one test file: `make()` one, `removeAll()` in afterAll. */
export function scratchDirs(prefix: string) {
  const made: string[] = [];
  return {
    make(): string {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      made.push(dir);
      return dir;
    },
    removeAll(): void {
      for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
    },
  };
}

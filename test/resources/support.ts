import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { loadConfig } from "../../config/load.ts";
import { createServerApp, type RunningHttpServer, startHttpServer } from "../../server/app.ts";
import { serverRoutes } from "../../server/routes.ts";
import type { PgConnection } from "../../store/database.ts";
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

/**
 * A TCP proxy in front of a database that holds every byte the server sends for `delayMs` (settable, in
 * order), and can cut every connection and refuse new ones: how a test makes a process hear of a change
 * late, or lose its connection, without depending on how fast the machine is.
 */
export interface SlowLink {
  connection: PgConnection;
  delayMs: number;
  /** While true, connections are closed as soon as they are made. */
  refusing: boolean;
  cutAll(): void;
  close(): Promise<void>;
}

export async function startSlowLink(target: PgConnection): Promise<SlowLink> {
  const upstream: net.NetConnectOpts =
    typeof target === "string"
      ? { host: new URL(target).hostname, port: Number(new URL(target).port || 5432) }
      : target.host.startsWith("/")
        ? { path: join(target.host, `.s.PGSQL.${target.port}`) }
        : { host: target.host, port: target.port };
  const sockets = new Set<net.Socket>();
  const link = { delayMs: 0, refusing: false };
  const server = net.createServer((client) => {
    if (link.refusing) {
      client.destroy();
      return;
    }
    const database = net.connect(upstream);
    for (const socket of [client, database]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => sockets.delete(socket));
    }
    client.pipe(database);
    client.on("close", () => database.destroy());
    let lastDelivery = 0;
    const later = (deliver: () => void) => {
      // Never before an earlier chunk, even when the delay was just lowered.
      lastDelivery = Math.max(performance.now() + link.delayMs, lastDelivery);
      setTimeout(deliver, Math.max(0, lastDelivery - performance.now()));
    };
    database.on("data", (chunk) => later(() => client.write(chunk)));
    database.on("close", () => later(() => client.destroy()));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  const connection: PgConnection =
    typeof target === "string" ? Object.assign(new URL(target), { hostname: "127.0.0.1", port: String(port) }).toString() : { host: "127.0.0.1", port };
  return Object.assign(link, {
    connection,
    cutAll() {
      for (const socket of sockets) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  });
}

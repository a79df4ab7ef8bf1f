import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { PGlite } from "@electric-sql/pglite";
import { Client, Connection } from "@temporalio/client";
import type { LoadedConfig } from "../config/load.ts";
import { installPath } from "../config/paths.ts";
import { connectStore, type Store } from "../store/index.ts";
import { type PGliteServer, servePGlite } from "../store/pglite-server.ts";
import { claimDataFolder, findOwner, type OwnerHandle, type RuntimeInfo } from "./ownership.ts";
import { type DevServer, startDevServer } from "./temporal-dev-server.ts";

export interface RuntimeNeeds {
  store?: boolean;
  temporal?: boolean;
  /** What this process is, for the message another agl process shows while waiting for it. */
  command: string;
}

export interface Runtime {
  readonly config: LoadedConfig;
  readonly store: Store;
  readonly temporal: { address: string; uiUrl?: string; client: Client; connection: Connection };
  /** True when this process owns the embedded services: they stop when it exits. */
  readonly ownsEmbedded: boolean;
  readonly owner?: OwnerHandle;
  /** The agl process owning the embedded services this process joined, if any. */
  readonly peer?: RuntimeInfo;
  /** A one-line description of where data and services are, for summaries. */
  describe(): string;
  /** Runs `closer` first when the runtime closes (workers, servers built on top of it). */
  defer(closer: () => Promise<void>): void;
  close(): Promise<void>;
}

const WAIT_FOR_OWNER_MS = 60_000;
const PEER_DRAIN_MS = 10_000;

/**
 * Gives a command the store and Temporal it needs. External services (DATABASE_URL,
 * TEMPORAL_ADDRESS) are used as they are. Otherwise the embedded ones live in the data folder: the
 * first agl process to claim the folder opens PGlite and starts the Temporal dev server, and stops
 * them when it exits; other processes meanwhile reach them through it.
 */
export async function openRuntime(config: LoadedConfig, needs: RuntimeNeeds): Promise<Runtime> {
  const deadline = Date.now() + WAIT_FOR_OWNER_MS;
  for (;;) {
    try {
      return await openRuntimeOnce(config, needs, deadline);
    } catch (error) {
      // The owner we joined stopped while we connected: claim the folder again, or join its successor.
      if (error instanceof OwnerGoneError && Date.now() < deadline) continue;
      throw error instanceof OwnerGoneError ? error.cause : error;
    }
  }
}

class OwnerGoneError extends Error {}

async function openRuntimeOnce(config: LoadedConfig, needs: RuntimeNeeds, deadline: number): Promise<Runtime> {
  const embeddedStore = Boolean(needs.store) && !config.database.url;
  const embeddedTemporal = Boolean(needs.temporal) && !config.temporal.address;
  const closers: (() => Promise<void>)[] = [];
  let closing: Promise<void> | undefined;
  // Once, whoever asks first (the command finishing, or Ctrl-C while it runs): last opened, first closed.
  const close = () =>
    (closing ??= (async () => {
      for (const closer of [...closers].reverse()) await closer().catch(() => undefined);
    })());

  try {
    let owner: OwnerHandle | undefined;
    let peer: RuntimeInfo | undefined;
    if (embeddedStore || embeddedTemporal) {
      let announced = false;
      for (;;) {
        const claim = await claimDataFolder(config.dataPath, needs.command);
        if (claim.owned) {
          owner = claim.handle;
          closers.push(() => claim.handle.release());
          break;
        }
        const serves = claim.info.ready && (!embeddedStore || claim.info.store) && (!embeddedTemporal || claim.info.temporal);
        if (serves) {
          peer = claim.info;
          break;
        }
        if (Date.now() > deadline) {
          throw new Error(
            `Another agl process (pid ${claim.info.pid}: ${claim.info.command}) holds the data folder ${config.dataPath} and does not serve what this command needs. Wait for it to finish, or run \`agl up\` to serve the embedded store and Temporal to every command.`,
          );
        }
        if (!announced && claim.info.ready) {
          process.stderr.write(`Waiting for agl process ${claim.info.pid} (${claim.info.command}) to release ${config.dataPath}...\n`);
          announced = true;
        }
        await sleep(250);
      }
    }

    let storeConnection: Parameters<typeof connectStore>[0] | undefined;
    let devServer: DevServer | undefined;
    if (owner) {
      const ownerHandle = owner;
      // Side by side: opening PGlite and starting the dev server take one to two seconds each.
      const [embedded, temporalServer] = await Promise.allSettled([
        embeddedStore ? openEmbeddedStore(config.dataPath) : undefined,
        embeddedTemporal
          ? startDevServer({
              cli: installPath(config.temporal.cli),
              stateDir: join(config.dataPath, "temporal"),
              namespace: config.temporal.namespace,
              port: config.temporal.devServer.port,
              uiPort: config.temporal.devServer.uiPort,
            })
          : undefined,
      ]);
      if (embedded.status === "fulfilled" && embedded.value) {
        closers.push(embedded.value.close);
        storeConnection = embedded.value.connection;
        ownerHandle.update({ store: embedded.value.connection });
      }
      if (temporalServer.status === "fulfilled" && temporalServer.value) {
        devServer = temporalServer.value;
        closers.push(temporalServer.value.stop);
        ownerHandle.update({ temporal: { address: devServer.address, uiUrl: devServer.uiUrl } });
      }
      for (const result of [embedded, temporalServer]) if (result.status === "rejected") throw result.reason;
      ownerHandle.update({ ready: true });
      // First thing on close: newcomers wait for the next owner instead of joining one that is stopping.
      closers.push(async () => ownerHandle.update({ ready: false }));
    } else if (peer) {
      storeConnection = embeddedStore ? peer.store : undefined;
    }

    const joined = peer;
    const ownerStillServes = async (error: unknown): Promise<never> => {
      const current = joined ? await findOwner(config.dataPath) : undefined;
      if (joined && (current?.pid !== joined.pid || !current.ready)) throw new OwnerGoneError("owner gone", { cause: error });
      throw error;
    };

    const store = needs.store ? await connectStore(config.database.url ?? storeConnection!).catch(ownerStillServes) : undefined;
    if (store) closers.push(() => store.close());

    let temporal: Runtime["temporal"] | undefined;
    if (needs.temporal) {
      const address = config.temporal.address ?? devServer?.address ?? peer!.temporal!.address;
      const uiUrl = config.temporal.uiUrl ?? devServer?.uiUrl ?? peer?.temporal?.uiUrl;
      const connection = await Connection.connect({ address }).catch(ownerStillServes);
      closers.push(() => connection.close());
      const client = new Client({ connection, namespace: config.temporal.namespace });
      temporal = { address, ...(uiUrl ? { uiUrl } : {}), client, connection };
    }

    return {
      config,
      get store(): Store {
        if (!store) throw new Error("This command did not open the store.");
        return store;
      },
      get temporal(): Runtime["temporal"] {
        if (!temporal) throw new Error("This command did not connect to Temporal.");
        return temporal;
      },
      ownsEmbedded: owner !== undefined,
      ...(owner ? { owner } : {}),
      ...(peer ? { peer } : {}),
      describe() {
        const storeText = config.database.url ? "PostgreSQL (DATABASE_URL)" : `PGlite in ${join(config.dataPath, "pglite")}`;
        const temporalText = config.temporal.address
          ? `Temporal at ${config.temporal.address}`
          : `Temporal dev server (SQLite in ${join(config.dataPath, "temporal")})${temporal?.uiUrl ? `, UI ${temporal.uiUrl}` : ""}`;
        return `${storeText}; ${temporalText}`;
      },
      defer(closer) {
        closers.push(closer);
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** PGlite in the data folder, served over the PostgreSQL wire protocol to this process and the others. */
async function openEmbeddedStore(dataPath: string): Promise<{ connection: PGliteServer["connection"]; close(): Promise<void> }> {
  const pglite = new PGlite(join(dataPath, "pglite"));
  await pglite.waitReady;
  const server = await servePGlite(pglite, { socketDir: join(dataPath, "run") }).catch(async (error: unknown) => {
    await pglite.close();
    throw error;
  });
  return {
    connection: server.connection,
    async close() {
      await drainPeers(server);
      await server.close();
      await pglite.close();
    },
  };
}

/**
 * Other agl processes may be in the middle of a command on our PGlite: give them a moment to finish
 * before the database goes away (a long-lived peer such as `agl worker` loses it after the grace period).
 */
async function drainPeers(server: PGliteServer): Promise<void> {
  const deadline = Date.now() + PEER_DRAIN_MS;
  while (server.stats().connections > 0 && Date.now() < deadline) await sleep(100);
}

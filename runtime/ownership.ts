import { createHash } from "node:crypto";
import { existsSync, realpathSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";

/** What the process owning a data folder serves to the other agl processes on the machine. */
export interface RuntimeInfo {
  pid: number;
  command: string;
  startedAt: string;
  ready: boolean;
  store?: { host: string; port: number };
  temporal?: { address: string; uiUrl: string };
  http?: { url: string };
  worker: boolean;
}

export type Ownership = { owned: true; handle: OwnerHandle } | { owned: false; info: RuntimeInfo };

export interface OwnerHandle {
  info: RuntimeInfo;
  update(patch: Partial<RuntimeInfo>): void;
  release(): Promise<void>;
}

/** How long a claim waits for an answer from the socket's holder before asking again. */
const ANSWER_TIMEOUT_MS = 5_000;
/** How long a claimant keeps asking an owner that holds the folder but does not answer. */
const SILENT_OWNER_PATIENCE_MS = 60_000;

/**
 * One process owns a data folder. The claim is a listening unix socket: on Linux in the abstract
 * namespace, which the kernel frees when the owner dies (even by SIGKILL), so a crashed owner never
 * leaves a stale lock behind; elsewhere a socket file that a new claimant probes before replacing it.
 * The socket also answers every connection with the owner's RuntimeInfo, so other processes find the
 * owner's services through it.
 */
export async function claimDataFolder(dataPath: string, command: string): Promise<Ownership> {
  await mkdir(dataPath, { recursive: true });
  const address = ownershipAddress(dataPath);
  const info: RuntimeInfo = { pid: process.pid, command, startedAt: new Date().toISOString(), ready: false, worker: false };
  const server = net.createServer((socket) => {
    socket.on("error", () => socket.destroy());
    socket.end(`${JSON.stringify(info)}\n`);
  });
  const patience = Date.now() + SILENT_OWNER_PATIENCE_MS;
  for (let unanswered = 0; unanswered < 3; ) {
    const listened = await listen(server, address);
    if (listened === "ok") {
      server.unref();
      return {
        owned: true,
        handle: {
          info,
          update(patch) {
            Object.assign(info, patch);
          },
          async release() {
            await new Promise<void>((resolve) => server.close(() => resolve()));
            if (!address.startsWith("\0")) await rm(address, { force: true });
          },
        },
      };
    }
    const peer = await readRuntimeInfo(address);
    if (typeof peer === "object") return { owned: false, info: peer };
    // Connected, but no answer yet: the owner lives and its event loop is busy (a long synchronous step, a
    // loaded machine). Ask again rather than give up on a live owner.
    if (peer === "silent" && Date.now() < patience) continue;
    unanswered++;
    // Nobody answers: a socket file left by a dead owner (non-Linux only). Remove it and claim again.
    if (!address.startsWith("\0")) await rm(address, { force: true });
  }
  throw new Error(`Could not claim the data folder ${dataPath}: another process holds ${address} but does not answer.`);
}

/** The owner's info, or undefined when no process owns the folder. */
export async function findOwner(dataPath: string): Promise<RuntimeInfo | undefined> {
  // A folder that does not exist yet has no owner (its address needs the real path, which it lacks).
  if (!existsSync(dataPath)) return undefined;
  const answer = await readRuntimeInfo(ownershipAddress(dataPath));
  return typeof answer === "object" ? answer : undefined;
}

function ownershipAddress(dataPath: string): string {
  const canonical = realpathSync(dataPath);
  if (process.platform === "linux") {
    const digest = createHash("sha256").update(canonical).digest("hex").slice(0, 24);
    return `\0agl-data-folder-${digest}`;
  }
  return join(canonical, "owner.sock");
}

function listen(server: net.Server, address: string): Promise<"ok" | "in-use"> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      if (error.code === "EADDRINUSE") resolve("in-use");
      else reject(error);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve("ok");
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ path: address });
  });
}

/** The owner's info; "silent" when it took the connection and said nothing within ANSWER_TIMEOUT_MS; "absent" otherwise. */
function readRuntimeInfo(address: string): Promise<RuntimeInfo | "silent" | "absent"> {
  return new Promise((resolve) => {
    const socket = net.connect({ path: address });
    let text = "";
    let silent = false;
    socket.setEncoding("utf8");
    socket.setTimeout(ANSWER_TIMEOUT_MS, () => {
      silent = text === "";
      socket.destroy();
    });
    socket.on("data", (chunk) => (text += chunk));
    socket.on("error", () => resolve("absent"));
    socket.on("close", () => {
      if (silent) return resolve("silent");
      try {
        resolve(text ? (JSON.parse(text) as RuntimeInfo) : "absent");
      } catch {
        resolve("absent");
      }
    });
  });
}

/**
 * Serves one PGlite instance over the PostgreSQL wire protocol to many `pg` connections.
 *
 * PGlite is a single backend session. Each connection's frontend messages are buffered into groups that end at
 * a point where the client waits for an answer (Query, Sync, Flush, FunctionCall); a group runs as one unit under
 * `db.runExclusive`, so extended-query sequences of different connections never interleave. When a group leaves the
 * session inside a transaction (ReadyForQuery status T or E), or in the middle of an extended-query sequence (a Flush
 * answered without ReadyForQuery), that connection keeps the session: other connections wait, first come first
 * served, until it is idle again. A connection that goes away while holding the session is rolled back.
 *
 * Because there is only one session, session state is shared by every connection: SET, named prepared statements,
 * named portals, temporary tables and advisory session locks leak between connections. The project's store uses none
 * of these. Anything else using the same PGlite instance directly (db.query) bypasses this arbitration and may land
 * inside a client's open transaction, so the owner process should go through the server too.
 *
 * LISTEN/UNLISTEN are the exception: the server keeps who listens to what per connection, takes every notification
 * out of the output of the group that committed it, and hands it to each connection listening on its channel, as
 * PostgreSQL would. It recognises them as simple-query statements of their own (`LISTEN x`, `UNLISTEN x`,
 * `UNLISTEN *`, several separated by `;`), which is what pg's `client.query("LISTEN x")` sends.
 */
import { lstat, mkdir, rm } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { join, resolve } from "node:path";
import type { PGlite } from "@electric-sql/pglite";

export interface PGliteServer {
  /** `host` is the directory holding the unix socket `.s.PGSQL.<port>`, or a TCP address. */
  readonly connection: { host: string; port: number };
  readonly connectionString: string;
  stats(): { connections: number; waiting: number };
  close(): Promise<void>;
}

export interface PGliteServerOptions {
  socketDir?: string;
  host?: string;
  port?: number;
  maxConnections?: number;
  idleInTransactionMs?: number;
}

const DEFAULT_UNIX_SOCKET_PORT = 5432;
const DEFAULT_MAX_CONNECTIONS = 64;
const DEFAULT_IDLE_IN_TRANSACTION_MS = 60_000;
const MAX_UNIX_SOCKET_PATH_BYTES = 107;

const SSL_REQUEST_CODE = 80877103;
const GSSENC_REQUEST_CODE = 80877104;
const CANCEL_REQUEST_CODE = 80877102;
const PROTOCOL_MAJOR_VERSION = 3;
/** PostgreSQL rejects longer startup packets too; it bounds what an unauthenticated peer can make us buffer. */
const MAX_STARTUP_PACKET_BYTES = 10_000;

const READY_FOR_QUERY = 0x5a; // 'Z'
const NOTIFICATION_RESPONSE = 0x41; // 'A'
const ERROR_RESPONSE = 0x45; // 'E'
const SIMPLE_QUERY = 0x51; // 'Q'
const TERMINATE = 0x58; // 'X'
/** Messages after which a client waits for the server, so the buffered group must run now. */
const GROUP_BOUNDARIES = new Set([0x51 /* Q */, 0x53 /* S */, 0x48 /* H */, 0x46 /* F */]);

export async function servePGlite(db: PGlite, options: PGliteServerOptions): Promise<PGliteServer> {
  await db.waitReady;
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const idleInTransactionMs = options.idleInTransactionMs ?? DEFAULT_IDLE_IN_TRANSACTION_MS;
  const session = sessionArbiterFor(db);
  const admitted = new Set<ClientConnection>();
  const rejected = new Set<ClientConnection>();

  const server = createServer((socket) => {
    const isAdmitted = admitted.size < maxConnections;
    const client = new ClientConnection(socket, session, {
      idleInTransactionMs,
      rejection: isAdmitted ? null : fatalErrorResponse("53300", `sorry, too many clients already (too many connections, limit ${maxConnections})`),
    });
    const members = isAdmitted ? admitted : rejected;
    members.add(client);
    void client.finished.then(() => members.delete(client));
  });

  const socketDir = options.socketDir === undefined ? null : resolve(options.socketDir);
  const socketPort = options.port ?? DEFAULT_UNIX_SOCKET_PORT;
  const socketPath = socketDir === null ? null : await prepareUnixSocketPath(socketDir, socketPort);
  await new Promise<void>((resolveListen, rejectListen) => {
    server.once("error", rejectListen);
    const onListening = () => {
      server.off("error", rejectListen);
      resolveListen();
    };
    if (socketPath) server.listen(socketPath, onListening);
    else server.listen(options.port ?? 0, options.host ?? "127.0.0.1", onListening);
  });

  const connection = socketDir === null ? tcpAddress(server) : { host: socketDir, port: socketPort };
  const connectionString = socketDir !== null
    ? `postgresql://postgres@/postgres?host=${encodeURIComponent(connection.host)}&port=${connection.port}`
    : `postgresql://postgres@${connection.host.includes(":") ? `[${connection.host}]` : connection.host}:${connection.port}/postgres`;

  let closing: Promise<void> | null = null;
  return {
    connection,
    connectionString,
    stats: () => ({ connections: admitted.size, waiting: session.waitingCount }),
    close: () => {
      closing ??= (async () => {
        const serverClosed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
        const clients = [...admitted, ...rejected];
        await Promise.all(clients.map((client) => client.destroy()));
        await serverClosed;
        if (socketPath) await rm(socketPath, { force: true });
      })();
      return closing;
    },
  };
}

function tcpAddress(server: Server): { host: string; port: number } {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("PGlite server is not listening on TCP");
  return { host: address.address, port: address.port };
}

async function prepareUnixSocketPath(socketDir: string, port: number): Promise<string> {
  const socketPath = join(socketDir, `.s.PGSQL.${port}`);
  const pathBytes = Buffer.byteLength(socketPath);
  if (pathBytes > MAX_UNIX_SOCKET_PATH_BYTES) {
    throw new Error(`Unix socket path ${socketPath} is ${pathBytes} bytes, longer than the OS limit of ${MAX_UNIX_SOCKET_PATH_BYTES}; use a shorter socketDir`);
  }
  await mkdir(socketDir, { recursive: true, mode: 0o700 });
  const existing = await lstat(socketPath).catch(() => null);
  if (existing) {
    if (!existing.isSocket()) throw new Error(`${socketPath} exists and is not a socket`);
    if (await acceptsConnections(socketPath)) throw new Error(`${socketPath} is already served by another process`);
    await rm(socketPath, { force: true });
  }
  return socketPath;
}

function acceptsConnections(socketPath: string): Promise<boolean> {
  return new Promise((resolveProbe) => {
    const probe = createConnection(socketPath);
    probe.once("connect", () => {
      probe.destroy();
      resolveProbe(true);
    });
    probe.once("error", () => resolveProbe(false));
  });
}

/** Shared by every server on the same instance, since they all drive the same single session. */
const sessionArbiters = new WeakMap<PGlite, SessionArbiter>();

function sessionArbiterFor(db: PGlite): SessionArbiter {
  let arbiter = sessionArbiters.get(db);
  if (!arbiter) {
    arbiter = new SessionArbiter(db);
    sessionArbiters.set(db, arbiter);
  }
  return arbiter;
}

type Waiter = { client: ClientConnection; grant: (granted: boolean) => void };

/** A group of frontend messages and the LISTEN/UNLISTEN statements among them. */
interface Group {
  messages: Uint8Array;
  channelChanges: ChannelChange[];
}

type ChannelChange = { listen: boolean; channel: string | "*" };

/**
 * Hands the single PGlite session to one group at a time and keeps it with a connection between its groups while that
 * connection is mid-transaction. Routes notifications to the connections listening on their channel.
 */
class SessionArbiter {
  private readonly db: PGlite;
  private holder: ClientConnection | null = null;
  private running = false;
  private readonly waiters: Waiter[] = [];
  private failure: Error | null = null;
  private readonly listeners = new Map<string, Set<ClientConnection>>();

  constructor(db: PGlite) {
    this.db = db;
  }

  get waitingCount(): number {
    return this.waiters.length;
  }

  isHeldBy(client: ClientConnection): boolean {
    return this.holder === client;
  }

  /** Runs one group for `client`; returns false if the client went away before its turn came. */
  async run(client: ClientConnection, group: Group, onBackendData: (chunk: Uint8Array) => void): Promise<boolean> {
    if (!(await this.acquire(client))) return false;
    const output = new BackendOutput(onBackendData, (notification) => this.deliver(notification));
    let stillHeld = false;
    try {
      await this.execute(group.messages, (chunk) => output.feed(chunk));
      output.end();
      stillHeld = output.endStatus !== "I";
      if (group.channelChanges.length > 0 && !output.sawError) {
        const relisten = this.applyChannelChanges(client, group.channelChanges);
        // Still inside this turn, so no other group commits while the session is not listening.
        if (relisten.length > 0) await this.execute(simpleQuery(relisten.map((channel) => `LISTEN ${quoteIdentifier(channel)}`).join("; ")), () => {});
      }
    } finally {
      this.release(stillHeld ? client : null);
    }
    return true;
  }

  /** The client stops receiving notifications; the session keeps listening (others may listen, and unused channels cost nothing). */
  forget(client: ClientConnection): void {
    for (const members of this.listeners.values()) members.delete(client);
  }

  /** Returns the channels the session must LISTEN to again: a client's UNLISTEN stopped the one shared session listening to them. */
  private applyChannelChanges(client: ClientConnection, changes: ChannelChange[]): string[] {
    const unlistened = new Set<string>();
    for (const { listen, channel } of changes) {
      if (listen) {
        if (channel === "*") continue;
        let members = this.listeners.get(channel);
        if (!members) this.listeners.set(channel, (members = new Set()));
        members.add(client);
      } else {
        for (const [name, members] of this.listeners) {
          if (channel !== "*" && channel !== name) continue;
          members.delete(client);
          unlistened.add(name);
        }
        // Any other channel the session listens to for nobody is dropped by UNLISTEN *, and fine to drop.
      }
    }
    return [...unlistened].filter((channel) => (this.listeners.get(channel)?.size ?? 0) > 0);
  }

  private deliver(notification: Buffer): void {
    // NotificationResponse: type, length, sender pid (Int32), then the channel as a C string.
    const channelStart = 9;
    const channel = notification.toString("utf8", channelStart, notification.indexOf(0, channelStart));
    for (const client of this.listeners.get(channel) ?? []) client.notify(notification);
  }

  /** Ends whatever the departed client left open in the session and lets the others in. */
  async abandon(client: ClientConnection): Promise<void> {
    for (let index = this.waiters.length - 1; index >= 0; index--) {
      const waiter = this.waiters[index]!;
      if (waiter.client !== client) continue;
      this.waiters.splice(index, 1);
      waiter.grant(false);
    }
    if (this.holder !== client) return;
    if (!(await this.acquire(client).catch(() => false))) return;
    try {
      // The client's own running group may have ended its transaction while this waited.
      if (this.holder === client) await this.execute(SESSION_RESET, () => {});
    } catch {
      // The client is gone; a dead backend is already recorded in `failure`.
    } finally {
      this.release(null);
    }
  }

  private acquire(client: ClientConnection): Promise<boolean> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((grant) => {
      this.waiters.push({ client, grant });
      this.dispatch();
    });
  }

  private release(holder: ClientConnection | null): void {
    this.running = false;
    this.holder = holder;
    this.dispatch();
  }

  private dispatch(): void {
    if (this.running) return;
    const index = this.holder === null ? 0 : this.waiters.findIndex((waiter) => waiter.client === this.holder);
    const next = this.waiters[index];
    if (index < 0 || !next) return;
    this.waiters.splice(index, 1);
    this.running = true;
    next.grant(true);
  }

  private async execute(frontendMessages: Uint8Array, onBackendData: (chunk: Uint8Array) => void): Promise<void> {
    try {
      await this.db.runExclusive(() => this.db.execProtocolRawStream(frontendMessages, { onRawData: onBackendData }));
    } catch (error) {
      const failure = new Error(`PGlite failed: ${errorMessage(error)}`, { cause: error });
      if (isBackendDeath(error)) {
        // The wasm backend exited (COPY FROM STDIN does this); further calls would hang or exhaust memory.
        this.failure = failure;
        for (const waiter of this.waiters.splice(0)) waiter.grant(false);
      }
      throw failure;
    }
  }
}

/**
 * Follows message framing across the raw output chunks: forwards everything but notifications (handed to `notify`
 * whole, in order), and learns whether the output ended with ReadyForQuery and with which transaction status; no
 * ReadyForQuery at the end means an extended-query sequence is still open. Chunks are views into PGlite's memory,
 * valid only during the call: `forward` copies what it keeps, and a header cut by a chunk end is held back until it
 * is known not to start a notification.
 */
export class BackendOutput {
  private readonly header = Buffer.alloc(5);
  private headerBytes = 0;
  /** How many of `headerBytes` came in earlier chunks (and were not forwarded yet). */
  private heldBack = 0;
  private bodyBytesLeft = 0;
  private messageType = 0;
  private lastStatus = 0;
  private notification: Buffer | null = null;
  private notificationBytes = 0;
  sawError = false;
  private readonly forward: (bytes: Uint8Array) => void;
  private readonly notify: (notification: Buffer) => void;

  constructor(forward: (bytes: Uint8Array) => void, notify: (notification: Buffer) => void) {
    this.forward = forward;
    this.notify = notify;
  }

  feed(chunk: Uint8Array): void {
    let offset = 0;
    let forwardFrom = 0;
    while (offset < chunk.length) {
      if (this.bodyBytesLeft > 0) {
        const taken = Math.min(this.bodyBytesLeft, chunk.length - offset);
        if (this.messageType === READY_FOR_QUERY) this.lastStatus = chunk[offset + taken - 1]!;
        if (this.notification) {
          this.notification.set(chunk.subarray(offset, offset + taken), this.notificationBytes);
          this.notificationBytes += taken;
          forwardFrom = offset + taken;
        }
        offset += taken;
        this.bodyBytesLeft -= taken;
        if (this.bodyBytesLeft === 0) this.notificationDone();
        continue;
      }
      this.header[this.headerBytes++] = chunk[offset++]!;
      if (this.headerBytes < this.header.length) continue;
      this.messageType = this.header[0]!;
      this.bodyBytesLeft = this.header.readInt32BE(1) - 4;
      this.headerBytes = 0;
      if (this.messageType === ERROR_RESPONSE) this.sawError = true;
      if (this.messageType === NOTIFICATION_RESPONSE) {
        if (this.heldBack === 0) this.send(chunk.subarray(forwardFrom, offset - this.header.length));
        forwardFrom = offset;
        this.notification = Buffer.alloc(this.header.length + this.bodyBytesLeft);
        this.header.copy(this.notification);
        this.notificationBytes = this.header.length;
        if (this.bodyBytesLeft === 0) this.notificationDone();
      } else if (this.heldBack > 0) {
        // Nothing of this chunk was forwarded yet, so the held-back start of the header still goes first.
        this.send(this.header.subarray(0, this.heldBack));
      }
      this.heldBack = 0;
    }
    this.send(chunk.subarray(forwardFrom, chunk.length - (this.headerBytes - this.heldBack)));
    this.heldBack = this.headerBytes;
  }

  /** A well-formed output never ends inside a message; this keeps a truncated one from being swallowed. */
  end(): void {
    this.send(this.header.subarray(0, this.heldBack));
    this.heldBack = 0;
  }

  private notificationDone(): void {
    if (!this.notification) return;
    this.notify(this.notification);
    this.notification = null;
  }

  private send(bytes: Uint8Array): void {
    if (bytes.length > 0) this.forward(bytes);
  }

  get endStatus(): "I" | "T" | "E" | null {
    const complete = this.headerBytes === 0 && this.bodyBytesLeft === 0;
    if (!complete || this.messageType !== READY_FOR_QUERY) return null;
    const status = String.fromCharCode(this.lastStatus);
    return status === "I" || status === "T" || status === "E" ? status : null;
  }
}

/** A byte queue that only copies when a message spans chunks, so large messages arriving in pieces stay linear. */
class ByteQueue {
  private chunks: Buffer[] = [];
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  peek(byteCount: number): Buffer | null {
    if (this.size < byteCount) return null;
    if (this.chunks[0]!.length < byteCount) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0]!.subarray(0, byteCount);
  }

  take(byteCount: number): Buffer {
    const bytes = this.peek(byteCount)!;
    const first = this.chunks[0]!;
    if (first.length === byteCount) this.chunks.shift();
    else this.chunks[0] = first.subarray(byteCount);
    this.size -= byteCount;
    return bytes;
  }
}

interface ClientConnectionOptions {
  idleInTransactionMs: number;
  /** ErrorResponse sent instead of serving, once the client has introduced itself. */
  rejection: Buffer | null;
}

class ClientConnection {
  /** Settles once the socket is gone and anything the client left open in the session is rolled back. */
  readonly finished: Promise<void>;
  private readonly socket: Socket;
  private readonly session: SessionArbiter;
  private readonly options: ClientConnectionOptions;
  private readonly incoming = new ByteQueue();
  private groupMessages: Buffer[] = [];
  private groupChannelChanges: ChannelChange[] = [];
  private readonly readyGroups: Group[] = [];
  private startupDone = false;
  private stopReading = false;
  private closed = false;
  private processing: Promise<void> = Promise.resolve();
  private isProcessing = false;
  private idleInTransactionTimer: NodeJS.Timeout | null = null;
  private markFinished: () => void = () => {};

  constructor(socket: Socket, session: SessionArbiter, options: ClientConnectionOptions) {
    this.socket = socket;
    this.session = session;
    this.options = options;
    this.finished = new Promise((resolveFinished) => (this.markFinished = resolveFinished));
    socket.setNoDelay(true);
    socket.on("data", (data: Buffer) => this.receive(data));
    socket.on("error", () => {});
    socket.on("close", () => void this.shutdown());
  }

  async destroy(): Promise<void> {
    this.socket.destroy();
    await this.shutdown();
  }

  private receive(data: Buffer): void {
    if (this.stopReading) return;
    this.incoming.push(data);
    let tookPacket = true;
    while (tookPacket && !this.stopReading) tookPacket = this.startupDone ? this.takeMessage() : this.takeStartupPhasePacket();
  }

  /** Before startup, packets carry no type byte: length, then a request code or protocol version. */
  private takeStartupPhasePacket(): boolean {
    const header = this.incoming.peek(8);
    if (!header) return false;
    const length = header.readInt32BE(0);
    const code = header.readInt32BE(4);
    if (length < 8 || length > MAX_STARTUP_PACKET_BYTES) {
      this.terminate(fatalErrorResponse("08P01", "invalid length of startup packet"));
      return false;
    }
    if (this.incoming.length < length) return false;
    const packet = this.incoming.take(length);
    if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
      if (this.socket.writable) this.socket.write("N");
    } else if (code === CANCEL_REQUEST_CODE) {
      // PGlite runs each group synchronously, so there is never a running query to cancel.
      this.terminate(null);
    } else if (code >>> 16 !== PROTOCOL_MAJOR_VERSION) {
      this.terminate(fatalErrorResponse("0A000", `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}`));
    } else if (this.options.rejection) {
      this.terminate(this.options.rejection);
    } else {
      this.startupDone = true;
      // PGlite recognises a startup packet only as the sole content of an exec call.
      this.enqueueGroup({ messages: packet, channelChanges: [] });
    }
    return true;
  }

  private takeMessage(): boolean {
    const header = this.incoming.peek(5);
    if (!header) return false;
    const type = header[0]!;
    const length = header.readInt32BE(1);
    if (length < 4) {
      this.terminate(fatalErrorResponse("08P01", `invalid message length ${length}`));
      return false;
    }
    if (this.incoming.length < length + 1) return false;
    const message = this.incoming.take(length + 1);
    if (type === TERMINATE) {
      // Unsynced messages before Terminate are discarded, as PostgreSQL aborts them when the backend exits.
      this.groupMessages = [];
      this.stopReading = true;
      void this.processing.then(() => this.terminate(null));
      return false;
    }
    this.groupMessages.push(message);
    if (type === SIMPLE_QUERY) this.groupChannelChanges.push(...channelChangesOf(message.toString("utf8", 5, message.length - 1)));
    if (GROUP_BOUNDARIES.has(type)) {
      this.enqueueGroup({ messages: this.groupMessages.length === 1 ? message : Buffer.concat(this.groupMessages), channelChanges: this.groupChannelChanges });
      this.groupMessages = [];
      this.groupChannelChanges = [];
    }
    return true;
  }

  private enqueueGroup(group: Group): void {
    this.readyGroups.push(group);
    if (this.isProcessing) return;
    this.isProcessing = true;
    this.processing = this.processGroups();
  }

  private async processGroups(): Promise<void> {
    try {
      for (let group = this.readyGroups.shift(); group && !this.closed; group = this.readyGroups.shift()) {
        this.clearIdleInTransactionTimer();
        await this.session.run(this, group, (chunk) => this.send(chunk));
      }
      if (!this.closed && this.session.isHeldBy(this)) this.startIdleInTransactionTimer();
    } catch (error) {
      this.terminate(fatalErrorResponse("XX000", errorMessage(error)));
    } finally {
      this.isProcessing = false;
    }
  }

  private send(chunk: Uint8Array): void {
    // The chunk is a view into PGlite's wasm heap, reused by the next call, so it must be copied.
    if (this.socket.writable) this.socket.write(Buffer.from(chunk));
  }

  /** An asynchronous NotificationResponse: any group of this client has been answered in full by now, or it is the one committing. */
  notify(notification: Buffer): void {
    if (this.socket.writable) this.socket.write(notification);
  }

  private startIdleInTransactionTimer(): void {
    this.idleInTransactionTimer = setTimeout(() => {
      this.terminate(fatalErrorResponse("25P03", "terminating connection due to idle-in-transaction timeout"));
    }, this.options.idleInTransactionMs);
    this.idleInTransactionTimer.unref();
  }

  private clearIdleInTransactionTimer(): void {
    if (this.idleInTransactionTimer) clearTimeout(this.idleInTransactionTimer);
    this.idleInTransactionTimer = null;
  }

  private terminate(farewell: Buffer | null): void {
    this.stopReading = true;
    if (farewell && this.socket.writable) this.socket.write(farewell);
    // end() flushes the farewell; destroy() afterwards frees the session even if the peer never closes its side.
    this.socket.end(() => this.socket.destroy());
    void this.shutdown();
  }

  private async shutdown(): Promise<void> {
    if (this.closed) return this.finished;
    this.closed = true;
    this.stopReading = true;
    this.session.forget(this);
    this.clearIdleInTransactionTimer();
    this.readyGroups.length = 0;
    const inFlight = this.processing;
    await this.session.abandon(this);
    await inFlight;
    // The group that was running when the socket closed may have left a transaction open.
    await this.session.abandon(this);
    this.markFinished();
  }
}

/** Emscripten's ExitStatus (the backend called exit) and WebAssembly.RuntimeError (a trap) leave no usable backend. */
function isBackendDeath(error: unknown): boolean {
  return typeof error === "object" && error !== null && "name" in error && (error.name === "ExitStatus" || error.name === "RuntimeError");
}

function errorMessage(error: unknown): string {
  return typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error);
}

const LISTEN_STATEMENT = /\s*(UNLISTEN|LISTEN)\s+("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*|\*)\s*(?:;\s*|$)/iy;

/** The LISTEN/UNLISTEN statements of a simple query made of nothing else; none for any other query. */
function channelChangesOf(query: string): ChannelChange[] {
  if (!/^\s*(?:UN)?LISTEN\s/i.test(query)) return [];
  const changes: ChannelChange[] = [];
  LISTEN_STATEMENT.lastIndex = 0;
  while (LISTEN_STATEMENT.lastIndex < query.length) {
    const match = LISTEN_STATEMENT.exec(query);
    if (!match) return [];
    const name = match[2]!;
    const channel = name.startsWith('"') ? name.slice(1, -1).replaceAll('""', '"') : name === "*" ? "*" : name.toLowerCase();
    changes.push({ listen: match[1]!.toUpperCase() === "LISTEN", channel });
  }
  return changes;
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function simpleQuery(text: string): Buffer {
  return frontendMessage("Q", Buffer.from(`${text}\0`));
}

function frontendMessage(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, "latin1");
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/**
 * Leaves the session idle whatever state a departed client left it in: the first ROLLBACK ends an open or failed
 * transaction (or the implicit one of an unsynced extended query); if the backend is skipping messages after an
 * extended-query error it ignores that, and the Sync ends the skipping, after which the second ROLLBACK applies.
 */
const SESSION_RESET = Buffer.concat([
  frontendMessage("Q", Buffer.from("ROLLBACK\0")),
  frontendMessage("S", Buffer.alloc(0)),
  frontendMessage("Q", Buffer.from("ROLLBACK\0")),
]);

function fatalErrorResponse(sqlState: string, message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${sqlState}\0M${message}\0\0`);
  const header = Buffer.alloc(5);
  header.write("E", 0, "latin1");
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

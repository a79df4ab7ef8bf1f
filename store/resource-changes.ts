import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { type Kysely, sql } from "kysely";
import type pg from "pg";
import { createClient, type PgConnection } from "./database.ts";
import type { Database } from "./schema.ts";

/**
 * Who learns that a prompt resource changed, and when. In this process, listeners hear of a change the
 * store commits before the store call returns. Other processes hear of it through PostgreSQL
 * LISTEN/NOTIFY (the PGlite wire server routes it too): migration 0006's triggers notify this channel in
 * the writing transaction, so every commit notifies, whoever wrote it, and never before it is visible.
 *
 * A notification arrives some time after the commit, so on its own it would leave a window in which a
 * request that starts after a rollback returned still gets the old version from another process's memory.
 * The window is closed by invalidate-before-ack: a process serving copies from memory ("following")
 * registers with a lease; after each change the writer sends a numbered barrier on the same channel and
 * returns only once every following process has acknowledged it. Notifications arrive in commit order, so
 * acknowledging the barrier means the change before it was handled. A follower whose lease ran out, or
 * whose connection broke, is no longer waited for, and stops serving from memory first (its own deadline
 * ends earlier than the one the database holds it to) and forgets everything before it serves from memory again.
 */
export const RESOURCE_CHANGES_CHANNEL = "agl_resource_changes";

/** One resource's versions or labels changed; `any`: changes of any resource may have been missed (following was interrupted). */
export type ResourceChange = { kind: "resource"; name: string } | { kind: "any" };
export type ResourceChangeListener = (change: ResourceChange) => void;

/** How long a follower holds writers up when it disappears without saying goodbye (SIGKILL, a lost network). */
const LEASE_MS = 5_000;
const RENEW_EVERY_MS = 1_000;
/** A follower stops trusting its lease this long before the database lets it lapse: clocks tick at slightly different rates. */
const LEASE_SAFETY_MS = 1_000;
/** A follower keeping its lease without acknowledging (not this code) stops holding writers after this. */
const ACKNOWLEDGE_LIMIT_MS = 2 * LEASE_MS;
const RECONNECT_MAX_MS = 5_000;

export interface ResourceChanges {
  /** Calls `listener` synchronously on every change this process commits or learns of (it must not throw); returns the unsubscribe. */
  subscribe(listener: ResourceChangeListener): () => void;
  /** Starts following other processes' changes (once per store): until `current()`, nothing may be served from memory. */
  follow(): ResourceFollowing;
  /** The store's write path, after a commit: tells this process's listeners, then waits for every other following process. */
  committed(name: string): Promise<void>;
  close(): Promise<void>;
}

export interface ResourceFollowing {
  /** True while every change committed from now on reaches this process before its writer returns. Cheap: a clock read. */
  current(): boolean;
}

export function resourceChanges(db: Kysely<Database>, connection: PgConnection): ResourceChanges {
  const listeners = new Set<ResourceChangeListener>();
  const emit: ResourceChangeListener = (change) => {
    for (const listener of listeners) listener(change);
  };
  let follower: Follower | undefined;
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    follow() {
      follower ??= new Follower(connection, emit);
      return follower;
    },
    async committed(name) {
      emit({ kind: "resource", name });
      // This process's own copies were dropped just above.
      await awaitAcknowledgements(db, name, follower?.id);
    },
    async close() {
      await follower?.stop();
      listeners.clear();
    },
  };
}

async function awaitAcknowledgements(db: Kysely<Database>, name: string, self: string | undefined): Promise<void> {
  const lagging = async (barrier: number) => {
    const rows = await db
      .selectFrom("resource_cache_subscribers")
      .select("id")
      .where("expires_at", ">", sql<Date>`now()`)
      .where("acked_barrier", "<", barrier)
      .$if(self !== undefined, (query) => query.where("id", "<>", self!))
      .execute();
    return rows.map((row) => row.id);
  };
  // A follower registering after this read registered after the commit: it has nothing older in memory.
  if ((await lagging(Number.MAX_SAFE_INTEGER)).length === 0) return;
  const sent = await sql<{ barrier: number }>`
    SELECT n AS barrier, pg_notify(${RESOURCE_CHANGES_CHANNEL}, json_build_object('barrier', n)::text)
    FROM nextval('resource_change_barriers') AS b(n)`.execute(db);
  const barrier = sent.rows[0]!.barrier;
  const deadline = performance.now() + ACKNOWLEDGE_LIMIT_MS;
  for (let pause = 1; ; pause = Math.min(2 * pause, 50)) {
    const waitingFor = await lagging(barrier);
    if (waitingFor.length === 0) return;
    if (performance.now() > deadline) {
      throw new Error(
        `The change to "${name}" is committed, but ${waitingFor.length} process(es) serving prompts from memory did not confirm seeing it within ${ACKNOWLEDGE_LIMIT_MS / 1000} s (resource_cache_subscribers ids: ${waitingFor.join(", ")}); they may serve the previous version until their lease ends. Restart them if this repeats.`,
      );
    }
    await sleep(pause);
  }
}

/**
 * Registers or renews, acknowledging barrier $2. With $4 (the follower forgets everything before it serves
 * from memory again) it acknowledges every barrier sent so far: what they guard is already in the database
 * it will read, and their notifications may have gone to a connection that is gone.
 */
const REGISTER = `
  INSERT INTO resource_cache_subscribers (id, acked_barrier, expires_at)
  SELECT $1, greatest($2, CASE WHEN $4 AND is_called THEN last_value ELSE 0 END), now() + $3 * interval '1 millisecond' FROM resource_change_barriers
  ON CONFLICT (id) DO UPDATE SET acked_barrier = greatest(resource_cache_subscribers.acked_barrier, EXCLUDED.acked_barrier), expires_at = EXCLUDED.expires_at
  RETURNING acked_barrier`;
/** Also sweeps away registrations of processes that died long ago. */
const UNREGISTER = `DELETE FROM resource_cache_subscribers WHERE id = $1 OR expires_at < now() - interval '1 hour'`;

/**
 * One connection of its own: LISTEN, and a registration renewed every second that carries the highest
 * barrier handled so far. Renewal and acknowledgement are one statement, so a follower that renews has
 * acknowledged everything that reached it before.
 */
class Follower implements ResourceFollowing {
  readonly id = randomUUID();
  private client: pg.Client | undefined;
  /** performance.now() until which this process may serve from memory. */
  private trustedUntil = 0;
  private barrierSeen = 0;
  private renewal: Promise<void> | undefined;
  private renewAgain = false;
  private connecting: Promise<void>;
  private readonly stopping = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly connection: PgConnection;
  private readonly emit: ResourceChangeListener;

  constructor(connection: PgConnection, emit: ResourceChangeListener) {
    this.connection = connection;
    this.emit = emit;
    this.timer = setInterval(() => void this.renew().catch(() => undefined), RENEW_EVERY_MS);
    this.timer.unref();
    this.connecting = this.connect();
  }

  current(): boolean {
    return performance.now() < this.trustedUntil;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    clearInterval(this.timer);
    await this.connecting;
    await this.renewal?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    this.trustedUntil = 0;
    if (!client) return;
    // Writers stop waiting for this process at once instead of when its lease ends.
    await client.query(UNREGISTER, [this.id]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    for (let pause = 250; !this.stopping.signal.aborted; pause = Math.min(2 * pause, RECONNECT_MAX_MS)) {
      const client = createClient(this.connection);
      client.on("notification", (message) => this.receive(message.payload));
      client.on("error", () => this.lose(client));
      client.on("end", () => this.lose(client));
      try {
        await client.connect();
        await client.query(`LISTEN ${RESOURCE_CHANGES_CHANNEL}`);
        if (this.stopping.signal.aborted) throw new Error("stopping");
        this.client = client;
        await this.renew();
        return;
      } catch {
        if (this.client === client) this.client = undefined;
        this.trustedUntil = 0;
        await client.end().catch(() => undefined);
        await sleep(pause, undefined, { signal: this.stopping.signal }).catch(() => undefined);
      }
    }
  }

  private receive(payload: string | undefined): void {
    const message = parsePayload(payload);
    if (message && typeof message.name === "string") this.emit({ kind: "resource", name: message.name });
    else if (message && typeof message.barrier === "number") {
      this.barrierSeen = Math.max(this.barrierSeen, message.barrier);
      void this.renew().catch(() => undefined);
    } else this.emit({ kind: "any" }); // not ours: assume the worst
  }

  /** One renewal at a time; a request meanwhile (a new barrier) runs another right after it. */
  private renew(): Promise<void> {
    const client = this.client;
    if (!client) return Promise.resolve();
    if (this.renewal) {
      this.renewAgain = true;
      return this.renewal;
    }
    this.renewal = (async () => {
      try {
        do {
          this.renewAgain = false;
          const sentAt = performance.now();
          const catchingUp = !this.current();
          const registered = await client.query<{ acked_barrier: number }>(REGISTER, [this.id, this.barrierSeen, LEASE_MS, catchingUp]);
          if (this.client !== client) return;
          this.barrierSeen = Math.max(this.barrierSeen, registered.rows[0]!.acked_barrier);
          // Lapsed: writers may have stopped waiting for this process, and their notifications may still be on the way.
          if (catchingUp || !this.current()) this.emit({ kind: "any" });
          this.trustedUntil = sentAt + LEASE_MS - LEASE_SAFETY_MS;
        } while (this.renewAgain);
      } finally {
        this.renewal = undefined;
      }
    })();
    return this.renewal;
  }

  private lose(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.trustedUntil = 0;
    this.emit({ kind: "any" });
    void client.end().catch(() => undefined);
    if (!this.stopping.signal.aborted) this.connecting = this.connect();
  }
}

function parsePayload(payload: string | undefined): { name?: unknown; barrier?: unknown } | undefined {
  try {
    const parsed: unknown = JSON.parse(payload ?? "");
    return typeof parsed === "object" && parsed !== null ? parsed : undefined;
  } catch {
    return undefined;
  }
}

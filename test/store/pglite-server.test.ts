import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { PGlite } from "@electric-sql/pglite";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { type PGliteServer, servePGlite } from "../../store/pglite-server.ts";

let db: PGlite;
let server: PGliteServer;
let scratchDir: string;
const openPools: pg.Pool[] = [];
const openClients: pg.Client[] = [];
const extraServers: PGliteServer[] = [];

function createPool(max: number, config: pg.PoolConfig = { connectionString: server.connectionString }): pg.Pool {
  const pool = new pg.Pool({ ...config, max });
  pool.on("error", () => {});
  openPools.push(pool);
  return pool;
}

async function connectClient(connectionString = server.connectionString): Promise<pg.Client> {
  const client = new pg.Client({ connectionString });
  // A client the server drops must not crash the test run; the test asserts on its query results instead.
  client.on("error", () => {});
  openClients.push(client);
  await client.connect();
  return client;
}

/**
 * A socket that sends every write in 8-byte slices a millisecond apart, as a slow network would, so the server
 * receives one query's Parse/Bind/Describe/Execute/Sync spread over many reads with other clients' traffic between.
 */
function tricklingSocket(): Socket {
  const socket = new Socket();
  // Socket.connect() resets `write`, so the override goes in once connected (before pg's own connect listener runs).
  socket.once("connect", () => {
    const writeNow = socket.write.bind(socket);
    const endNow = socket.end.bind(socket);
    let sending = Promise.resolve();
    const enqueue = (step: () => Promise<void>) => (sending = sending.then(step, step));
    socket.write = ((chunk: Uint8Array) => {
      const bytes = Buffer.from(chunk);
      enqueue(async () => {
        for (let offset = 0; offset < bytes.length; offset += 8) {
          writeNow(bytes.subarray(offset, offset + 8));
          await delay(1);
        }
      });
      return true;
    }) as Socket["write"];
    socket.end = (() => {
      enqueue(async () => void endNow());
      return socket;
    }) as Socket["end"];
  });
  return socket;
}

async function countRows(pool: pg.Pool, table: string): Promise<number> {
  const result = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return result.rows[0]!.n;
}

/** Tracks whether a promise has settled, to assert that a query is still blocked. */
function track<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let settled = false;
  const tracked = promise.finally(() => (settled = true));
  return { promise: tracked, settled: () => settled };
}

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await delay(10);
  }
}

beforeAll(async () => {
  db = new PGlite();
  server = await servePGlite(db, {});
  scratchDir = await mkdtemp(join(tmpdir(), "pgls-"));
});

afterEach(async () => {
  await Promise.all(openClients.splice(0).map((client) => client.end().catch(() => {})));
  await Promise.all(openPools.splice(0).map((pool) => pool.end()));
  await Promise.all(extraServers.splice(0).map((extra) => extra.close()));
});

afterAll(async () => {
  await server?.close();
  await db?.close();
  if (scratchDir) await rm(scratchDir, { recursive: true, force: true });
});

describe("servePGlite over TCP", () => {
  test("reports a real ephemeral port on 127.0.0.1", () => {
    expect(server.connection.host).toBe("127.0.0.1");
    expect(server.connection.port).toBeGreaterThan(0);
    expect(server.connectionString).toBe(`postgresql://postgres@127.0.0.1:${server.connection.port}/postgres`);
  });

  test("declines TLS with 'N', so a client that insists on TLS fails cleanly and the server keeps serving", async () => {
    const tlsClient = new pg.Client({ connectionString: server.connectionString, ssl: true });
    openClients.push(tlsClient);

    await expect(tlsClient.connect()).rejects.toThrow(/does not support SSL/);
    const pool = createPool(1);
    expect((await pool.query("SELECT 'plain' AS link")).rows[0]).toEqual({ link: "plain" });
  });

  test("parameterized queries from 4 pools of 8 connections never interleave", async () => {
    const setup = createPool(1);
    await setup.query("CREATE TABLE pairs (id int PRIMARY KEY, a int NOT NULL, label text NOT NULL)");
    // One pool on a slow link, so its messages are still arriving while the other pools' queries run.
    const slowLinkPool = createPool(8, { connectionString: server.connectionString, stream: tricklingSocket });
    const pools = [slowLinkPool, createPool(8), createPool(8), createPool(8)];

    const operations = Array.from({ length: 480 }, async (_, index) => {
      const pool = pools[index % pools.length]!;
      const a = index * 7;
      const b = 1_000 - index;
      switch (index % 3) {
        case 0: {
          const result = await pool.query<{ sum: number }>("SELECT $1::int + $2::int AS sum", [a, b]);
          return result.rows[0]!.sum === a + b;
        }
        case 1: {
          const result = await pool.query<{ joined: string }>("SELECT $1::text || ':' || $2::text || ':' || $3::text AS joined", [`x${index}`, a, b]);
          return result.rows[0]!.joined === `x${index}:${a}:${b}`;
        }
        default: {
          const result = await pool.query<{ id: number }>("INSERT INTO pairs (id, a, label) VALUES ($1, $2, $3) RETURNING id", [index, a, `row ${index}`]);
          return result.rows[0]!.id === index;
        }
      }
    });
    const outcomes = await Promise.all(operations);

    expect(outcomes.every(Boolean)).toBe(true);
    expect(server.stats().connections).toBeGreaterThanOrEqual(32);
    const stored = await setup.query<{ id: number; a: number; label: string }>("SELECT id, a, label FROM pairs ORDER BY id");
    const expected = Array.from({ length: 480 }, (_, index) => index)
      .filter((index) => index % 3 === 2)
      .map((index) => ({ id: index, a: index * 7, label: `row ${index}` }));
    expect(stored.rows).toEqual(expected);
  });

  test("a query whose messages arrive in many small pieces is not interleaved with other clients' queries", async () => {
    const slowClient = new pg.Client({ connectionString: server.connectionString, stream: tricklingSocket });
    slowClient.on("error", () => {});
    openClients.push(slowClient);
    await slowClient.connect();
    const fastPool = createPool(4);

    let slowFinished = false;
    const slowQueries = (async () => {
      const answers: string[] = [];
      for (let round = 0; round < 6; round++) {
        const result = await slowClient.query<{ answer: string }>("SELECT $1::text || '/' || $2::text || '/' || $3::text AS answer", ["slow", round, "done"]);
        answers.push(result.rows[0]!.answer);
      }
      return answers;
    })().finally(() => (slowFinished = true));
    const fastSums: number[] = [];
    while (!slowFinished) {
      const batch = await Promise.all(Array.from({ length: 8 }, (_, index) => fastPool.query<{ sum: number }>("SELECT $1::int + $2::int AS sum", [index, 1])));
      fastSums.push(...batch.map((result) => result.rows[0]!.sum));
    }

    expect(await slowQueries).toEqual(Array.from({ length: 6 }, (_, round) => `slow/${round}/done`));
    expect(fastSums.length).toBeGreaterThan(100);
    expect(fastSums.every((sum, position) => sum === (position % 8) + 1)).toBe(true);
  });

  test("an open transaction holds the database: others wait until COMMIT and then see its row", async () => {
    const setup = createPool(1);
    await setup.query("CREATE TABLE committed_rows (id int)");
    const owner = await connectClient();
    const reader = await connectClient();

    await owner.query("BEGIN");
    await owner.query("INSERT INTO committed_rows VALUES ($1)", [1]);
    const blockedCount = track(reader.query<{ n: number }>("SELECT count(*)::int AS n FROM committed_rows"));
    await delay(200);
    expect(blockedCount.settled()).toBe(false);
    expect(server.stats().waiting).toBe(1);

    const ownView = await owner.query<{ n: number }>("SELECT count(*)::int AS n FROM committed_rows");
    expect(ownView.rows[0]!.n).toBe(1);
    await owner.query("COMMIT");

    expect((await blockedCount.promise).rows[0]!.n).toBe(1);
    expect(server.stats().waiting).toBe(0);
  });

  test("a rolled-back transaction leaves nothing behind for the waiting client", async () => {
    const setup = createPool(1);
    await setup.query("CREATE TABLE rolled_back_rows (id int)");
    const owner = await connectClient();
    const reader = await connectClient();

    await owner.query("BEGIN");
    await owner.query("INSERT INTO rolled_back_rows VALUES (1), (2)");
    const blockedCount = track(reader.query<{ n: number }>("SELECT count(*)::int AS n FROM rolled_back_rows"));
    await delay(150);
    expect(blockedCount.settled()).toBe(false);
    await owner.query("ROLLBACK");

    expect((await blockedCount.promise).rows[0]!.n).toBe(0);
  });

  test("a client whose socket dies mid-transaction is rolled back and others proceed", async () => {
    const setup = createPool(1);
    await setup.query("CREATE TABLE abandoned_rows (id int)");
    const victim = await connectClient();
    const other = createPool(2);
    await other.query("SELECT 1");

    await victim.query("BEGIN");
    await victim.query("INSERT INTO abandoned_rows VALUES (1), (2), (3)");
    const connectionsWithVictim = server.stats().connections;
    const blockedCount = track(countRows(other, "abandoned_rows"));
    await delay(100);
    expect(blockedCount.settled()).toBe(false);

    victim.connection.stream.destroy();

    expect(await blockedCount.promise).toBe(0);
    await other.query("INSERT INTO abandoned_rows VALUES (4)");
    expect(await countRows(other, "abandoned_rows")).toBe(1);
    await waitFor(() => server.stats().connections === connectionsWithVictim - 1);
  });

  test("a failed statement keeps the transaction (status E) with its client until ROLLBACK", async () => {
    const setup = createPool(1);
    await setup.query("CREATE TABLE failed_tx_rows (id int)");
    const owner = await connectClient();
    const bystander = createPool(2);
    await bystander.query("SELECT 1");

    await owner.query("BEGIN");
    await owner.query("INSERT INTO failed_tx_rows VALUES (1)");
    await expect(owner.query("SELECT no_such_column FROM failed_tx_rows")).rejects.toThrow(/no_such_column/);
    const blockedCount = track(countRows(bystander, "failed_tx_rows"));
    await delay(150);
    expect(blockedCount.settled()).toBe(false);
    await expect(owner.query("SELECT 1")).rejects.toThrow(/current transaction is aborted/);
    await owner.query("ROLLBACK");

    expect(await blockedCount.promise).toBe(0);
    const sum = await bystander.query<{ sum: number }>("SELECT $1::int + $2::int AS sum", [20, 22]);
    expect(sum.rows[0]!.sum).toBe(42);
    expect((await owner.query<{ ok: number }>("SELECT 1 AS ok")).rows[0]!.ok).toBe(1);
  });

  test("row-limited portal reads (Flush without Sync) keep the session until their final Sync", async () => {
    const reader = await connectClient();
    const others = createPool(4);
    const pagedQuery = { text: "SELECT n FROM generate_series(1, 50) AS n", rows: 3 };

    const [paged, ...sums] = await Promise.all([
      reader.query<{ n: number }>(pagedQuery),
      ...Array.from({ length: 40 }, (_, index) => others.query<{ sum: number }>("SELECT $1::int + 1 AS sum", [index])),
    ]);

    expect(paged.rows.map((row) => row.n)).toEqual(Array.from({ length: 50 }, (_, index) => index + 1));
    expect(sums.map((result) => result.rows[0]!.sum)).toEqual(Array.from({ length: 40 }, (_, index) => index + 1));
  });

  test("a transaction left idle too long is closed and rolled back", async () => {
    const impatient = await servePGlite(db, { idleInTransactionMs: 300 });
    extraServers.push(impatient);
    const setup = createPool(1, { connectionString: impatient.connectionString });
    await setup.query("CREATE TABLE idle_tx_rows (id int)");
    const idler = new pg.Client({ connectionString: impatient.connectionString });
    const idlerError = once(idler, "error");
    openClients.push(idler);
    await idler.connect();

    await idler.query("BEGIN");
    await idler.query("INSERT INTO idle_tx_rows VALUES (1)");
    const startedWaiting = Date.now();
    expect(await countRows(setup, "idle_tx_rows")).toBe(0);

    expect(Date.now() - startedWaiting).toBeGreaterThanOrEqual(250);
    const [error] = (await idlerError) as [Error];
    expect(error.message).toMatch(/idle-in-transaction timeout/);
  });

  test("connections beyond maxConnections get a too-many-connections error while the others keep working", async () => {
    const limited = await servePGlite(db, { maxConnections: 2 });
    extraServers.push(limited);
    const first = await connectClient(limited.connectionString);
    const second = await connectClient(limited.connectionString);

    await expect(connectClient(limited.connectionString)).rejects.toThrow(/too many connections/);
    expect(limited.stats().connections).toBe(2);

    const [a, b] = await Promise.all([first.query("SELECT 1 AS one"), second.query("SELECT 2 AS two")]);
    expect(a.rows[0]).toEqual({ one: 1 });
    expect(b.rows[0]).toEqual({ two: 2 });
    await first.end();
    await waitFor(() => limited.stats().connections === 1);
    const third = await connectClient(limited.connectionString);
    expect((await third.query("SELECT 3 AS three")).rows[0]).toEqual({ three: 3 });
  });

  test("kysely transactions stay atomic while other work runs concurrently", async () => {
    const pool = createPool(8);
    const kysely = new Kysely<{ ledger: { batch: number; step: number } }>({ dialect: new PostgresDialect({ pool }) });
    await sql`CREATE TABLE ledger (batch int NOT NULL, step int NOT NULL)`.execute(kysely);
    const observedCounts: number[] = [];

    const transactions = [1, 2, 3].map((batch) =>
      kysely.transaction().execute(async (trx) => {
        for (const step of [1, 2, 3]) {
          await trx.insertInto("ledger").values({ batch, step }).execute();
          await delay(5);
        }
        const own = await trx.selectFrom("ledger").select((eb) => eb.fn.countAll<number>().as("n")).where("batch", "=", batch).executeTakeFirstOrThrow();
        return Number(own.n);
      }),
    );
    const readers = Array.from({ length: 30 }, async () => {
      const row = await kysely.selectFrom("ledger").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
      observedCounts.push(Number(row.n));
    });
    const [ownCounts] = await Promise.all([Promise.all(transactions), Promise.all(readers)]);

    expect(ownCounts).toEqual([3, 3, 3]);
    expect(observedCounts).toHaveLength(30);
    expect(observedCounts.every((count) => count % 3 === 0)).toBe(true);
    const stored = await kysely.selectFrom("ledger").select(["batch", "step"]).orderBy("batch").orderBy("step").execute();
    expect(stored).toEqual([1, 2, 3].flatMap((batch) => [1, 2, 3].map((step) => ({ batch, step }))));
  });

  test("when a statement kills the PGlite backend, clients get an error instead of a hang", async () => {
    const doomedDb = new PGlite();
    const doomed = await servePGlite(doomedDb, {});
    extraServers.push(doomed);
    const killer = await connectClient(doomed.connectionString);
    await killer.query("CREATE TABLE copy_target (id int)");

    // PGlite cannot read COPY data from the wire: the backend reports EOF on stdin and the wasm module exits.
    await expect(killer.query("COPY copy_target FROM STDIN")).rejects.toThrow(/unexpected EOF/);
    await expect(connectClient(doomed.connectionString)).rejects.toThrow(/PGlite failed/);
  });
});

describe("servePGlite over a unix socket", () => {
  test("serves pg through the connection string and the connection object, and close() removes the socket file", async () => {
    const socketDir = join(scratchDir, "sock");
    const unixServer = await servePGlite(db, { socketDir, port: 6543 });
    const socketPath = join(socketDir, ".s.PGSQL.6543");
    expect(unixServer.connection).toEqual({ host: socketDir, port: 6543 });
    expect((await stat(socketPath)).isSocket()).toBe(true);
    expect((await stat(socketDir)).mode & 0o777).toBe(0o700);

    const viaString = createPool(2, { connectionString: unixServer.connectionString });
    const viaObject = createPool(2, { ...unixServer.connection, user: "postgres", database: "postgres" });
    const [fromString, fromObject] = await Promise.all([
      viaString.query<{ sum: number }>("SELECT $1::int + $2::int AS sum", [2, 3]),
      viaObject.query<{ sum: number }>("SELECT $1::int * $2::int AS sum", [2, 3]),
    ]);
    expect(fromString.rows[0]!.sum).toBe(5);
    expect(fromObject.rows[0]!.sum).toBe(6);

    await unixServer.close();
    await expect(stat(socketPath)).rejects.toThrow(/ENOENT/);
  });

  test("close() rolls back a transaction left open by one of its clients and lets other servers' clients in", async () => {
    const unixServer = await servePGlite(db, { socketDir: join(scratchDir, "closing") });
    extraServers.push(unixServer);
    const tcpPool = createPool(2);
    await tcpPool.query("CREATE TABLE closed_server_rows (id int)");
    const unixClient = await connectClient(unixServer.connectionString);
    await unixClient.query("BEGIN");
    await unixClient.query("INSERT INTO closed_server_rows VALUES (1)");

    const blockedCount = track(countRows(tcpPool, "closed_server_rows"));
    await delay(100);
    expect(blockedCount.settled()).toBe(false);
    await unixServer.close();

    expect(await blockedCount.promise).toBe(0);
  });

  test("replaces a stale socket file left by a killed process", async () => {
    const socketDir = join(scratchDir, "stale");
    const socketPath = join(socketDir, ".s.PGSQL.5432");
    await mkdir(socketDir);
    const holder = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(socketPath)}, () => console.log("up"))`], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    await once(holder.stdout!, "data");
    await expect(servePGlite(db, { socketDir })).rejects.toThrow(/already served/);
    holder.kill("SIGKILL");
    await once(holder, "exit");
    expect((await stat(socketPath)).isSocket()).toBe(true);

    const revived = await servePGlite(db, { socketDir });
    extraServers.push(revived);
    const pool = createPool(1, { connectionString: revived.connectionString });
    expect((await pool.query("SELECT 'alive' AS state")).rows[0]).toEqual({ state: "alive" });
  });

  test("refuses a socket path longer than the OS limit", async () => {
    await expect(servePGlite(db, { socketDir: join(scratchDir, "d".repeat(120)) })).rejects.toThrow(/107/);
  });
});

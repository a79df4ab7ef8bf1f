import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { inject } from "vitest";
import { BackendOutput, type PGliteServer, servePGlite } from "../../store/pglite-server.ts";

/**
 * LISTEN/NOTIFY through the PGlite wire server, which is how a process that does not own the data folder
 * hears of prompt changes. The server hands a notification to listeners before it answers the commit, so
 * a round trip on the listener after the notifier's commit returned is enough to see what it received.
 */
describe("the PGlite wire server routes notifications per connection", () => {
  let db: PGlite;
  let server: PGliteServer;
  let socketDir: string;
  const clients: pg.Client[] = [];

  beforeAll(async () => {
    db = new PGlite({ loadDataDir: new Blob([readFileSync(inject("pgliteTemplatePath"))]) });
    socketDir = mkdtempSync(join(tmpdir(), "agl-pgn-"));
    server = await servePGlite(db, { socketDir });
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
    await server?.close();
    await db?.close();
    rmSync(socketDir, { recursive: true, force: true });
  });

  async function connect() {
    const client = new pg.Client({ host: server.connection.host, port: server.connection.port, user: "postgres", database: "postgres" });
    const heard: string[] = [];
    client.on("notification", (message) => heard.push(`${message.channel}:${message.payload}`));
    await client.connect();
    clients.push(client);
    /** What reached this connection by now: a round trip first, so everything sent before it has arrived. */
    const received = async () => {
      await client.query("SELECT 1");
      return heard.splice(0);
    };
    return { client, received };
  }

  test("only listeners get a notification, once its transaction commits; UNLISTEN of one leaves the others listening", async () => {
    const [first, second, notifier] = await Promise.all([connect(), connect(), connect()]);
    await first.client.query("LISTEN alpha");
    await second.client.query('LISTEN alpha; LISTEN "Beta"');

    await notifier.client.query("NOTIFY alpha, 'one'");
    await notifier.client.query(`SELECT pg_notify('Beta', 'two')`);
    expect(await first.received()).toEqual(["alpha:one"]);
    expect(await second.received()).toEqual(["alpha:one", "Beta:two"]);
    expect(await notifier.received()).toEqual([]);

    await notifier.client.query("BEGIN");
    await notifier.client.query("NOTIFY alpha, 'in a transaction'");
    await notifier.client.query("SELECT repeat('x', 100000)");
    expect(await notifier.received()).toEqual([]);
    await notifier.client.query("COMMIT");
    expect(await first.received()).toEqual(["alpha:in a transaction"]);
    expect(await second.received()).toEqual(["alpha:in a transaction"]);

    // The one session stops listening when `second` unlistens; the server listens again for `first`.
    await second.client.query("UNLISTEN alpha");
    await notifier.client.query("NOTIFY alpha, 'three'");
    expect(await first.received()).toEqual(["alpha:three"]);
    expect(await second.received()).toEqual([]);

    await second.client.query("UNLISTEN *");
    await notifier.client.query(`SELECT pg_notify('Beta', 'four')`);
    expect(await second.received()).toEqual([]);
  });

  test("a connection that listens to what it notifies gets it in line with its own answers; a closed listener is forgotten", async () => {
    const [self, leaving] = await Promise.all([connect(), connect()]);
    await self.client.query("LISTEN gamma");
    await leaving.client.query("LISTEN gamma");
    await leaving.client.end();
    const rows = await self.client.query("SELECT pg_notify('gamma', 'mine'), repeat('y', 50000) AS filler");
    expect(rows.rows[0].filler).toHaveLength(50_000);
    expect(await self.received()).toEqual(["gamma:mine"]);
  });
});

describe("BackendOutput takes notifications out of the backend's output wherever the chunks break", () => {
  const message = (type: string, body: Buffer) => {
    const header = Buffer.alloc(5);
    header.write(type, 0, "latin1");
    header.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([header, body]);
  };
  const notification = (channel: string, payload: string) => {
    const pid = Buffer.alloc(4);
    pid.writeInt32BE(42);
    return message("A", Buffer.concat([pid, Buffer.from(`${channel}\0${payload}\0`)]));
  };
  const commandComplete = message("C", Buffer.from("SELECT 1\0"));
  const dataRow = message("D", Buffer.from([0, 1, 0, 0, 0, 3, 0x61, 0x62, 0x63]));
  const first = notification("alpha", "one");
  const second = notification("beta", "two");
  const ready = message("Z", Buffer.from("I"));
  const stream = Buffer.concat([dataRow, first, commandComplete, second, ready]);
  const withoutNotifications = Buffer.concat([dataRow, commandComplete, ready]);

  function feed(chunks: Buffer[]) {
    const forwarded: Buffer[] = [];
    const notified: Buffer[] = [];
    const output = new BackendOutput(
      (bytes) => forwarded.push(Buffer.from(bytes)),
      (message) => notified.push(message),
    );
    for (const chunk of chunks) output.feed(chunk);
    output.end();
    return { forwarded: Buffer.concat(forwarded), notified, status: output.endStatus };
  }

  test("in one chunk, in two at every position, and byte by byte", () => {
    const splits: Buffer[][] = [[stream], Array.from(stream, (byte) => Buffer.from([byte]))];
    for (let cut = 1; cut < stream.length; cut++) splits.push([stream.subarray(0, cut), stream.subarray(cut)]);
    for (const chunks of splits) {
      const { forwarded, notified, status } = feed(chunks);
      expect(forwarded.equals(withoutNotifications), `chunks of ${chunks.map((chunk) => chunk.length).join("+")} bytes`).toBe(true);
      expect(notified).toEqual([first, second]);
      expect(status).toBe("I");
    }
  });
});

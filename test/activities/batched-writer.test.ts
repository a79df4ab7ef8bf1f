import { describe, expect, test } from "vitest";
import { batchedWriter } from "../../activities/agent-batch.ts";

/** A store write that finishes only when the test says so. */
function heldWrites() {
  const written: number[][] = [];
  const held: { rows: number[]; finish: (error?: Error) => void }[] = [];
  const write = (rows: number[]) =>
    new Promise<void>((resolve, reject) => {
      held.push({ rows, finish: (error) => (error ? reject(error) : (written.push(rows), resolve())) });
    });
  return { write, written, held };
}

/** Lets queued promise callbacks run (the writer starts writes on a promise chain). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("batchedWriter", () => {
  test("a full group goes to the store without the caller waiting for it, and flush waits for every write", async () => {
    const store = heldWrites();
    const writer = batchedWriter(store.write, 2);
    await writer.add(1);
    await writer.add(2); // fills the group: its write starts and is held
    await writer.add(3);
    await writer.add(4); // a second group, queued behind the first
    await settle();
    expect(store.held.map((write) => write.rows)).toEqual([[1, 2]]);

    let flushed = false;
    const flushing = writer.flush().then(() => (flushed = true));
    store.held[0]!.finish();
    await settle();
    expect(flushed).toBe(false);
    expect(store.held.map((write) => write.rows)).toEqual([[1, 2], [3, 4]]);
    store.held[1]!.finish();
    await flushing;
    expect(store.written).toEqual([[1, 2], [3, 4]]);
  });

  test("callers wait once the writes are four groups behind", async () => {
    const store = heldWrites();
    const writer = batchedWriter(store.write, 1);
    for (const row of [1, 2, 3]) await writer.add(row);
    let fourthAdded = false;
    const fourth = writer.add(4).then(() => (fourthAdded = true));
    await settle();
    expect(fourthAdded).toBe(false);
    for (let index = 0; index < 4; index++) {
      await settle();
      store.held[index]!.finish();
    }
    await fourth;
    expect(store.written).toEqual([[1], [2], [3], [4]]);
  });

  test("a failed write fails the next add and the flush, and nothing after it is written", async () => {
    const store = heldWrites();
    const writer = batchedWriter(store.write, 1);
    await writer.add(1);
    await writer.add(2);
    await settle();
    store.held[0]!.finish(new Error("the store went away"));
    await settle();
    await expect(writer.add(3)).rejects.toThrow("the store went away");
    await expect(writer.flush()).rejects.toThrow("the store went away");
    expect(store.held.map((write) => write.rows)).toEqual([[1]]);
  });

  test("a group that does not fill is written after the delay", async () => {
    const store = heldWrites();
    const writer = batchedWriter(store.write, 10, 5);
    await writer.add(1);
    while (store.held.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    store.held[0]!.finish();
    await writer.flush();
    expect(store.written).toEqual([[1]]);
  });
});

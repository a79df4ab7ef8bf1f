import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { type LabelledResource, ResourceSnapshot } from "../../server/resource-snapshot.ts";
import { connectStore, type Store } from "../../store/index.ts";
import { waitFor } from "../cli/support.ts";
import { BACKENDS, openTestStore, type TestStore } from "../support/stores.ts";
import { postAnalyzerPrompt, publishPostAnalyzer, type SlowLink, startSlowLink } from "./support.ts";

const NAME = postAnalyzer.prompt.resource;
const variant = (technology: string) => postAnalyzerPrompt(`- technology: ${technology}\n- startups: founders\n- product_management: roadmaps\n- general: anything else`);

/** The version `label` points at in what the snapshot answers now (from memory or freshly read). */
async function served(snapshot: ResourceSnapshot, label = "production"): Promise<number | undefined> {
  return (await snapshot.lookup(NAME)).labels.get(label)?.version;
}

/** Until the store hears of every change in time, a snapshot on it reads the database for every request. */
function following(store: Store): Promise<true> {
  return waitFor("the store to follow changes", async () => (store.resourceChanges.follow().current() ? true : undefined), 30_000, 20);
}

describe.each(BACKENDS)("prompt resources served from memory on %s", (backend) => {
  let handle: TestStore;
  /** The writer: in tests, a store of its own stands for another process (its own connections, no shared memory). */
  let writer: Store;

  beforeAll(async () => {
    handle = await openTestStore(backend);
    writer = handle.store;
    await publishPostAnalyzer(writer, [postAnalyzer.prompt.seed, variant("code"), variant("chips")]);
  });
  afterAll(async () => {
    await handle?.close();
  });

  test("a resource is read once, with every label, and then answered from memory until it changes in this process", async () => {
    const store = await connectStore(handle.connection);
    try {
      let loads = 0;
      const snapshot = new ResourceSnapshot((name) => {
        loads++;
        return store.resources.labelled(name);
      }, store.resourceChanges);
      await following(store);

      const first = await snapshot.lookup(NAME);
      expect([...first.labels.keys()]).toEqual(["production"]);
      expect(first.labels.get("production")!.version).toBe(3);
      const again = snapshot.lookup(NAME);
      expect(again).toBe(first);
      expect(loads).toBe(1);

      await store.resources.moveLabel({ name: NAME, label: "candidate", toVersion: 2, actor: "test" });
      // Concurrent requests after a change share one read.
      const [a, b] = await Promise.all([snapshot.lookup(NAME), snapshot.lookup(NAME)]);
      expect(a).toBe(b);
      expect(a.labelNames).toEqual(["candidate", "production"]);
      expect(a.labels.get("candidate")!.version).toBe(2);
      expect(loads).toBe(2);

      // Unknown names are read each time and never kept.
      expect((await snapshot.lookup("nope")).labelNames).toEqual([]);
      await snapshot.lookup("nope");
      expect(loads).toBe(4);
    } finally {
      await store.close();
    }
  });

  describe("changes committed by another process", () => {
    let link: SlowLink;
    let serving: Store;
    let snapshot: ResourceSnapshot;

    beforeAll(async () => {
      link = await startSlowLink(handle.connection);
      serving = await connectStore(link.connection);
      snapshot = new ResourceSnapshot((name) => serving.resources.labelled(name), serving.resourceChanges);
    });
    afterAll(async () => {
      await serving?.close();
      await link?.close();
    });

    test("a rollback returns only once the serving process has dropped its copy, however late it hears of it", async () => {
      await following(serving);
      expect(await served(snapshot)).toBe(3);
      // Everything the database sends the serving process now arrives 300 ms late, the notification included.
      link.delayMs = 300;
      await writer.resources.rollback({ name: NAME, toVersion: 2, actor: "test" });
      const next = snapshot.lookup(NAME);
      link.delayMs = 0;
      expect((await next).labels.get("production")!.version).toBe(2);

      link.delayMs = 300;
      await writer.resources.publish({
        name: NAME,
        content: variant("silicon"),
        parentVersion: 2,
        createdBy: "test",
        labels: [{ label: "production", expectedVersion: 2 }],
      });
      const afterPublish = snapshot.lookup(NAME);
      link.delayMs = 0;
      expect((await afterPublish).labels.get("production")!.version).toBe(4);
    });

    test("a serving process that loses its connection stops answering from memory, and catches up when it is back", async () => {
      await following(serving);
      const before = (await writer.resources.getByLabel(NAME, "production")).version;
      expect(before).toBeGreaterThan(1);
      expect(await served(snapshot)).toBe(before);
      const heard: string[] = [];
      const unsubscribe = serving.resourceChanges.subscribe((change) => heard.push(change.kind));
      link.refusing = true;
      link.cutAll();
      // It forgets every copy as soon as it notices.
      await waitFor("the serving process to notice", async () => (heard.includes("any") ? true : undefined), 30_000, 5);
      unsubscribe();
      // Its registration still holds writers, and the writer's barrier goes out while it cannot hear it.
      const barriersSent = () => sql<{ sent: number }>`SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS sent FROM resource_change_barriers`.execute(writer.db);
      const sentBefore = (await barriersSent()).rows[0]!.sent;
      const rollback = writer.resources.rollback({ name: NAME, toVersion: 1, actor: "test" });
      await waitFor("the writer's barrier", async () => ((await barriersSent()).rows[0]!.sent > sentBefore ? true : undefined), 30_000, 20);
      link.refusing = false;
      // Back, it acknowledges every barrier sent before it listened again.
      await rollback;
      expect(await served(snapshot)).toBe(1);
      await following(serving);
      const cached: LabelledResource = await snapshot.lookup(NAME);
      expect(snapshot.lookup(NAME)).toBe(cached);
      expect(cached.labels.get("production")!.version).toBe(1);
    });

    test("closing unregisters: writers stop waiting for it", async () => {
      const extra = await connectStore(handle.connection);
      await following(extra);
      const registered = () => writer.db.selectFrom("resource_cache_subscribers").select("id").execute();
      expect(await registered()).toHaveLength(2);
      await extra.close();
      expect(await registered()).toHaveLength(1);
    });
  });

  test("a registered process that stops answering holds writers until its lease ends, and no longer", async () => {
    await writer.db
      .insertInto("resource_cache_subscribers")
      .values({ id: "gone", acked_barrier: 0, expires_at: new Date(Date.now() + 1_000) })
      .execute();
    await writer.resources.moveLabel({ name: NAME, label: "staging", toVersion: 1, actor: "test" });
    const [row] = await writer.db.selectFrom("resource_cache_subscribers").selectAll().where("id", "=", "gone").execute();
    expect(row!.expires_at.getTime()).toBeLessThanOrEqual(Date.now());
    expect(Number(row!.acked_barrier)).toBe(0);
  });
});

test("a registered process that keeps its lease but never acknowledges fails the writer after 10 s, saying the change is committed", async () => {
  const handle = await openTestStore("pglite");
  try {
    await publishPostAnalyzer(handle.store, [postAnalyzer.prompt.seed, variant("code")]);
    await handle.store.db
      .insertInto("resource_cache_subscribers")
      .values({ id: "stuck", acked_barrier: 0, expires_at: new Date(Date.now() + 3_600_000) })
      .execute();
    await expect(handle.store.resources.rollback({ name: NAME, toVersion: 1, actor: "test" })).rejects.toThrow(
      `The change to "${NAME}" is committed, but 1 process(es) serving prompts from memory did not confirm seeing it within 10 s (resource_cache_subscribers ids: stuck); they may serve the previous version until their lease ends. Restart them if this repeats.`,
    );
    expect((await handle.store.resources.getByLabel(NAME, "production")).version).toBe(1);
  } finally {
    await handle.close();
  }
});

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ConflictError, NotFoundError } from "../../store/errors.ts";
import type { NewRollout } from "../../store/rollouts.ts";
import type { PromptContent } from "../../store/schema.ts";
import { BACKENDS, openTestStore, type TestStore } from "../support/stores.ts";

const content = (text: string): PromptContent => ({ engine: "placeholders", components: { instructions: text } });

function rollout(id: string, overrides: Partial<NewRollout> = {}): NewRollout {
  return {
    id,
    agent: "post-analyzer",
    source: "queue",
    dataset: "posts",
    taskId: `t-${id}`,
    resourceName: "post-analyzer",
    resourceVersion: 1,
    candidateId: null,
    cycleId: "cy-1",
    phase: "collect",
    input: { content: `post ${id}` },
    output: { category: "general", sentiment: "neutral" },
    status: "succeeded",
    error: null,
    latencyMs: 12,
    model: "fake/fake-keyword",
    inputTokens: 10,
    outputTokens: 4,
    traceId: null,
    ...overrides,
  };
}

// One contract, every backend: the embedded PGlite and a real PostgreSQL must behave the same.
describe.each(BACKENDS)("store contract on %s", (backend) => {
  let handle: TestStore;
  beforeAll(async () => {
    handle = await openTestStore(backend);
  });
  afterAll(async () => {
    await handle?.close();
  });
  const store = () => handle.store;

  describe("resources", () => {
    test("versions are numbered 1, 2, 3 per name and never change once published", async () => {
      const first = await store().resources.publish({ name: "dense", content: content("one"), parentVersion: null, createdBy: "test" });
      const second = await store().resources.publish({ name: "dense", content: content("two"), parentVersion: 1, createdBy: "test" });
      await store().resources.publish({ name: "other", content: content("x"), parentVersion: null, createdBy: "test" });
      const third = await store().resources.publish({ name: "dense", content: content("three"), parentVersion: 2, createdBy: "test" });
      expect([first.version, second.version, third.version]).toEqual([1, 2, 3]);
      expect((await store().resources.getVersion("dense", 1)).content).toEqual(content("one"));
      expect((await store().resources.listVersions("dense")).map((v) => v.parentVersion)).toEqual([null, 1, 2]);
    });

    test("concurrent publishers of one name get distinct, dense version numbers", async () => {
      const published = await Promise.all(
        Array.from({ length: 6 }, (_, i) => store().resources.publish({ name: "racing", content: content(`v${i}`), parentVersion: null, createdBy: `writer-${i}` })),
      );
      expect(published.map((v) => v.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    });

    test("a publish retried with the same idempotency key returns the first version instead of a second one", async () => {
      const input = { name: "idem", content: content("a"), parentVersion: null, createdBy: "cycle:x", idempotencyKey: "deploy:cy-x" };
      const [a, b] = await Promise.all([store().resources.publish(input), store().resources.publish(input)]);
      const again = await store().resources.publish(input);
      expect(a.version).toBe(1);
      expect(b.version).toBe(1);
      expect(again.version).toBe(1);
      expect(await store().resources.listVersions("idem")).toHaveLength(1);
    });

    test("publish moves labels in the same transaction, and a lost compare-and-set writes nothing", async () => {
      await store().resources.publish({ name: "cas", content: content("v1"), parentVersion: null, createdBy: "seed", labels: [{ label: "production", expectedVersion: null }] });
      const v2 = await store().resources.publish({
        name: "cas",
        content: content("v2"),
        parentVersion: 1,
        createdBy: "cycle:a",
        labels: [{ label: "production", expectedVersion: 1 }],
      });
      expect(v2.labels).toEqual(["production"]);
      await expect(
        store().resources.publish({ name: "cas", content: content("stale"), parentVersion: 1, createdBy: "cycle:b", labels: [{ label: "production", expectedVersion: 1 }] }),
      ).rejects.toBeInstanceOf(ConflictError);
      expect((await store().resources.listVersions("cas")).map((v) => v.version)).toEqual([1, 2]);
      expect((await store().resources.getByLabel("cas", "production")).version).toBe(2);
    });

    test("two deploys racing for one label: exactly one wins, the other gets a conflict", async () => {
      await store().resources.publish({ name: "race", content: content("v1"), parentVersion: null, createdBy: "seed", labels: [{ label: "production", expectedVersion: null }] });
      const attempts = await Promise.allSettled(
        ["a", "b", "c"].map((who) =>
          store().resources.publish({ name: "race", content: content(who), parentVersion: 1, createdBy: who, labels: [{ label: "production", expectedVersion: 1 }] }),
        ),
      );
      const won = attempts.filter((a) => a.status === "fulfilled");
      const lost = attempts.filter((a): a is PromiseRejectedResult => a.status === "rejected");
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(2);
      for (const loss of lost) expect(loss.reason).toBeInstanceOf(ConflictError);
      expect(await store().resources.listVersions("race")).toHaveLength(2);
    });

    test("label moves are audited with actor, versions and reason", async () => {
      await store().resources.publish({ name: "audit", content: content("v1"), parentVersion: null, createdBy: "seed", labels: [{ label: "production", expectedVersion: null }] });
      await store().resources.publish({ name: "audit", content: content("v2"), parentVersion: 1, createdBy: "cycle:z", labels: [{ label: "production", expectedVersion: 1 }], reason: "better" });
      await store().resources.moveLabel({ name: "audit", label: "production", toVersion: 1, expectedVersion: 2, actor: "user:ana", reason: "regression", kind: "rolled_back" });
      const events = await store().resources.events("audit");
      expect(events.map((e) => [e.kind, e.label, e.fromVersion, e.toVersion, e.actor])).toEqual([
        ["rolled_back", "production", 2, 1, "user:ana"],
        ["labelled", "production", 1, 2, "cycle:z"],
        ["published", null, 1, 2, "cycle:z"],
        ["labelled", "production", null, 1, "seed"],
        ["published", null, null, 1, "seed"],
      ]);
      expect(events[0]!.reason).toBe("regression");
    });

    test("unknown names, versions and labels are NotFound errors that say what exists", async () => {
      await store().resources.publish({ name: "known", content: content("v1"), parentVersion: null, createdBy: "seed", labels: [{ label: "production", expectedVersion: null }] });
      await expect(store().resources.getVersion("missing", 1)).rejects.toThrow(/does not exist/);
      await expect(store().resources.getVersion("known", 9)).rejects.toThrow(/no version 9 \(versions 1-1 exist\)/);
      await expect(store().resources.getByLabel("known", "staging")).rejects.toThrow(/no label "staging" \(labels: production\)/);
      await expect(store().resources.moveLabel({ name: "known", label: "production", toVersion: 5, actor: "x" })).rejects.toBeInstanceOf(NotFoundError);
    });
  });

  describe("datasets", () => {
    const tasks = [
      { id: "a", input: { content: "one" }, expected: { category: "general" }, split: "train" as const },
      { id: "b", input: { content: "two" }, expected: null, split: "validation" as const },
      { id: "c", input: { content: "three" }, expected: { sentiment: "positive" }, split: "train" as const },
    ];

    test("imports all tasks with their splits, in file order", async () => {
      const summary = await store().datasets.importTasks({ name: "ds", agent: "post-analyzer", source: "test", tasks });
      expect(summary).toMatchObject({ name: "ds", agent: "post-analyzer", taskCount: 3, splits: { train: 2, validation: 1 } });
      expect(await store().datasets.taskIds("ds", "train")).toEqual(["a", "c"]);
      expect(await store().datasets.tasks("ds", ["c", "b"])).toEqual([tasks[1], tasks[2]]);
    });

    test("an existing name is a conflict unless replacing, and a failed import leaves the old tasks intact", async () => {
      await store().datasets.importTasks({ name: "keep", agent: "post-analyzer", source: "v1", tasks });
      await expect(store().datasets.importTasks({ name: "keep", agent: "post-analyzer", source: "v2", tasks: tasks.slice(0, 1) })).rejects.toBeInstanceOf(ConflictError);
      const duplicated = [...tasks, tasks[0]!];
      await expect(store().datasets.importTasks({ name: "keep", agent: "post-analyzer", source: "v3", tasks: duplicated, replace: true })).rejects.toThrow();
      expect((await store().datasets.get("keep")).source).toBe("v1");
      expect(await store().datasets.taskIds("keep", "train")).toEqual(["a", "c"]);
      await store().datasets.importTasks({ name: "keep", agent: "post-analyzer", source: "v4", tasks: tasks.slice(1), replace: true });
      expect((await store().datasets.get("keep")).taskCount).toBe(2);
    });

    test("an unknown data set is a NotFound error that names the import command", async () => {
      await expect(store().datasets.get("nope")).rejects.toThrow(/agl dataset import FILE --name nope/);
    });
  });

  describe("rollouts and rewards", () => {
    test("inserting a rollout twice stores it once", async () => {
      expect(await store().rollouts.insertMany([rollout("r1"), rollout("r2")])).toBe(2);
      expect(await store().rollouts.insertMany([rollout("r1"), rollout("r3")])).toBe(1);
      expect(await store().rollouts.countForCycle("cy-1")).toBe(3);
      expect(await store().rollouts.existingIds(["r1", "r3", "zz"])).toEqual(new Set(["r1", "r3"]));
    });

    test("rewards are idempotent per rollout, scorer and dedupe key, and must lie in [-1, 1]", async () => {
      await store().rollouts.insertMany([rollout("rw")]);
      const reward = { rolloutId: "rw", scorer: "ground-truth", value: 0.5, reason: "category right", details: { fields: { category: true } }, dedupeKey: "" };
      expect(await store().rollouts.addRewards([reward])).toBe(1);
      expect(await store().rollouts.addRewards([reward])).toBe(0);
      expect(await store().rollouts.addRewards([{ ...reward, scorer: "human", dedupeKey: "rating-1" }, { ...reward, scorer: "human", dedupeKey: "rating-2" }])).toBe(2);
      await expect(store().rollouts.addRewards([{ ...reward, scorer: "broken", value: 3 }])).rejects.toThrow();
      const stored = await store().rollouts.get("rw");
      expect(stored.rewards.map((r) => [r.scorer, r.value, r.reason])).toEqual([
        ["ground-truth", 0.5, "category right"],
        ["human", 0.5, "category right"],
        ["human", 0.5, "category right"],
      ]);
    });

    test("a cycle's rollouts filter by phase and by candidate, incumbent being no candidate", async () => {
      await store().rollouts.insertMany([
        rollout("v-inc", { cycleId: "cy-f", phase: "validate" }),
        rollout("v-c1", { cycleId: "cy-f", phase: "validate", candidateId: "c1", resourceVersion: null }),
        rollout("c-inc", { cycleId: "cy-f", phase: "collect" }),
      ]);
      const ids = async (filter: Parameters<TestStore["store"]["rollouts"]["listForCycle"]>[0]) => (await store().rollouts.listForCycle(filter)).map((r) => r.id);
      expect(await ids({ cycleId: "cy-f", phase: "validate" })).toEqual(["v-c1", "v-inc"]);
      expect(await ids({ cycleId: "cy-f", phase: "validate", candidateId: null })).toEqual(["v-inc"]);
      expect(await ids({ cycleId: "cy-f", phase: "validate", candidateId: "c1" })).toEqual(["v-c1"]);
      expect(await ids({ cycleId: "cy-f", phase: "collect" })).toEqual(["c-inc"]);
    });

    test("a rollout keeps everything it recorded", async () => {
      const original = rollout("full", { traceId: "abc", error: null, latencyMs: 33.4 });
      await store().rollouts.insertMany([original]);
      const stored = await store().rollouts.get("full");
      expect(stored).toMatchObject({ ...original, latencyMs: 33, rewards: [] });
      expect(stored.createdAt).toBeInstanceOf(Date);
      await expect(store().rollouts.get("missing")).rejects.toBeInstanceOf(NotFoundError);
    });
  });

  describe("cycles", () => {
    test("one lease per agent; takeover is compare-and-set on the stale holder", async () => {
      expect(await store().cycles.acquireLease("agent-l", "cy-a")).toEqual({ acquired: true });
      expect(await store().cycles.acquireLease("agent-l", "cy-a")).toEqual({ acquired: true });
      expect(await store().cycles.acquireLease("agent-l", "cy-b")).toEqual({ acquired: false, holder: "cy-a" });
      expect(await store().cycles.takeOverLease("agent-l", "cy-x", "cy-b")).toBe(false);
      expect(await store().cycles.takeOverLease("agent-l", "cy-a", "cy-b")).toBe(true);
      expect(await store().cycles.leaseHolder("agent-l")).toBe("cy-b");
      await store().cycles.releaseLease("agent-l", "cy-a");
      expect(await store().cycles.leaseHolder("agent-l")).toBe("cy-b");
      await store().cycles.releaseLease("agent-l", "cy-b");
      expect(await store().cycles.acquireLease("agent-l", "cy-c")).toEqual({ acquired: true });
    });

    test("concurrent lease claims: exactly one cycle gets it", async () => {
      const results = await Promise.all(["1", "2", "3", "4"].map((id) => store().cycles.acquireLease("agent-race", `cy-${id}`)));
      expect(results.filter((r) => r.acquired)).toHaveLength(1);
    });

    test("a cycle is created once and updated until finished; candidates are stored once", async () => {
      await store().cycles.create({ id: "cy-u", agent: "post-analyzer", dataset: "posts", trigger: "manual" });
      await store().cycles.create({ id: "cy-u", agent: "other", dataset: null, trigger: "schedule:x" });
      await store().cycles.update("cy-u", { phase: "collect", progress: { done: 3, total: 9 }, incumbentVersion: 1 });
      await store().cycles.update("cy-u", { phase: "done", outcome: "kept", outcomeDetail: "kept v1", metrics: { a: 1 }, finished: true });
      const cycle = await store().cycles.get("cy-u");
      expect(cycle).toMatchObject({ agent: "post-analyzer", trigger: "manual", phase: "done", outcome: "kept", incumbentVersion: 1, metrics: { a: 1 } });
      expect(cycle.finishedAt).toBeInstanceOf(Date);
      const candidate = { cycleId: "cy-u", id: "c1", content: content("x"), strategy: "s", rationale: "r", details: {} };
      await store().cycles.saveCandidates([candidate]);
      await store().cycles.saveCandidates([{ ...candidate, rationale: "changed" }]);
      expect(await store().cycles.candidates("cy-u")).toEqual([candidate]);
      expect((await store().cycles.list({ agent: "post-analyzer" })).map((c) => c.id)).toContain("cy-u");
      await expect(store().cycles.get("cy-none")).rejects.toBeInstanceOf(NotFoundError);
    });

    test("progress is recorded while a cycle runs, and a progress write that lands after the outcome changes nothing", async () => {
      await store().cycles.create({ id: "cy-p", agent: "post-analyzer", dataset: "posts", trigger: "manual" });
      await store().cycles.recordProgress("cy-p", { phase: "validate", progress: { done: 0, total: 30 } });
      expect(await store().cycles.get("cy-p")).toMatchObject({ phase: "validate", progress: { phase: "validate", progress: { done: 0, total: 30 } } });
      await store().cycles.update("cy-p", { phase: "done", outcome: "deployed", outcomeDetail: "deployed v2", finished: true });
      await store().cycles.recordProgress("cy-p", { phase: "deploy", progress: { done: 0, total: 1 } });
      expect(await store().cycles.get("cy-p")).toMatchObject({ phase: "done", outcome: "deployed", progress: { phase: "validate" } });
    });
  });
});

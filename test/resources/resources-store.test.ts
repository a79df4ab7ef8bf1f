import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ConflictError, InvalidInputError, NotFoundError } from "../../store/errors.ts";
import type { PromptContent } from "../../store/schema.ts";
import { BACKENDS, openTestStore, type TestStore } from "../support/stores.ts";

const content = (text: string): PromptContent => ({ engine: "placeholders", components: { instructions: text } });

describe.each(BACKENDS)("prompt resource history on %s", (backend) => {
  let handle: TestStore;
  beforeAll(async () => {
    handle = await openTestStore(backend);
  });
  afterAll(async () => {
    await handle?.close();
  });
  const resources = () => handle.store.resources;

  /** Publishes versions 1..count of `name`, production on the last one. */
  async function seed(name: string, count: number): Promise<void> {
    for (let version = 1; version <= count; version++) {
      await resources().publish({
        name,
        content: content(`v${version}`),
        parentVersion: version === 1 ? null : version - 1,
        createdBy: "seed",
        labels: [{ label: "production", expectedVersion: version === 1 ? null : version - 1 }],
      });
    }
  }

  async function rowCounts(name: string) {
    const count = async (table: "resource_versions" | "resource_labels" | "resource_events") =>
      Number((await handle.store.db.selectFrom(table).select((eb) => eb.fn.countAll().as("n")).where("name", "=", name).executeTakeFirstOrThrow()).n);
    return { versions: await count("resource_versions"), labels: await count("resource_labels"), events: await count("resource_events") };
  }

  test("rollback moves production to an earlier version and audits who, when, from, to and why", async () => {
    await seed("rb", 3);
    const moved = await resources().rollback({ name: "rb", toVersion: 1, actor: "user:ana", reason: "v3 mislabels startups" });
    expect(moved.resource.version).toBe(1);
    expect(moved.resource.labels).toEqual(["production"]);
    expect(moved.event).toMatchObject({ name: "rb", kind: "rolled_back", label: "production", fromVersion: 3, toVersion: 1, actor: "user:ana", reason: "v3 mislabels startups" });
    expect(moved.event.createdAt).toBeInstanceOf(Date);
    expect((await resources().getByLabel("rb", "production")).version).toBe(1);
    expect((await resources().events("rb"))[0]).toEqual(moved.event);
  });

  test("a rollback that is not to an earlier version, or names what does not exist, is refused and writes nothing", async () => {
    await seed("rb-bad", 2);
    const before = await rowCounts("rb-bad");
    await expect(resources().rollback({ name: "rb-bad", toVersion: 2, actor: "x" })).rejects.toThrow(
      new InvalidInputError(
        'A rollback moves "production" of "rb-bad" to an earlier version: it points at version 2, and version 2 is not earlier. To move it forward, promote instead (agl prompts promote). Nothing was changed.',
      ),
    );
    await expect(resources().rollback({ name: "rb-bad", toVersion: 7, actor: "x" })).rejects.toThrow(new NotFoundError('Resource "rb-bad" has no version 7 (versions 1-2 exist).'));
    await expect(resources().rollback({ name: "rb-bad", label: "staging", toVersion: 1, actor: "x" })).rejects.toThrow(
      new NotFoundError('Resource "rb-bad" has no label "staging" (labels: production).'),
    );
    await expect(resources().rollback({ name: "nope", toVersion: 1, actor: "x" })).rejects.toThrow(new NotFoundError('Resource "nope" does not exist.'));
    await expect(resources().rollback({ name: "rb-bad", toVersion: 1, expectedVersion: 1, actor: "x" })).rejects.toThrow(
      new ConflictError('Label "production" of "rb-bad" points at version 2, not version 1 as expected: someone moved it first. Nothing was changed.'),
    );
    expect(await rowCounts("rb-bad")).toEqual(before);
    expect((await resources().getByLabel("rb-bad", "production")).version).toBe(2);
  });

  test("a rollback retried with its idempotency key returns the first move instead of failing or moving twice", async () => {
    await seed("rb-idem", 3);
    const input = { name: "rb-idem", toVersion: 2, actor: "workflow:wf-1", idempotencyKey: "rollback:wf-1" };
    const [first, concurrent] = await Promise.all([resources().rollback(input), resources().rollback(input)]);
    const again = await resources().rollback(input);
    expect(concurrent.event).toEqual(first.event);
    expect(again.event).toEqual(first.event);
    expect((await resources().events("rb-idem")).filter((event) => event.kind === "rolled_back")).toHaveLength(1);
  });

  test("promote creates or moves any label; moving production to an older version is recorded as a rollback", async () => {
    await seed("promote", 3);
    const created = await resources().moveLabel({ name: "promote", label: "candidate", toVersion: 2, expectedVersion: null, actor: "user:bo" });
    expect(created.event).toMatchObject({ kind: "labelled", label: "candidate", fromVersion: null, toVersion: 2 });
    expect(created.resource.labels).toEqual(["candidate"]);
    const back = await resources().moveLabel({ name: "promote", label: "production", toVersion: 1, expectedVersion: 3, actor: "user:bo" });
    expect(back.event).toMatchObject({ kind: "rolled_back", fromVersion: 3, toVersion: 1 });
    const forward = await resources().moveLabel({ name: "promote", label: "production", toVersion: 3, actor: "user:bo" });
    expect(forward.event).toMatchObject({ kind: "labelled", fromVersion: 1, toVersion: 3 });
  });

  test("a deploy and a rollback racing for production: exactly one wins, the loser's conflict names the current version, nothing is lost", async () => {
    await seed("race-rb", 2);
    for (let round = 0; round < 6; round++) {
      const current = (await resources().getByLabel("race-rb", "production")).version;
      const before = await rowCounts("race-rb");
      const deploy = resources().publish({
        name: "race-rb",
        content: content(`deploy ${round}`),
        parentVersion: current,
        createdBy: `cycle:round-${round}`,
        labels: [{ label: "production", expectedVersion: current }],
      });
      const rollback = resources().rollback({ name: "race-rb", toVersion: 1, expectedVersion: current, actor: `user:round-${round}` });
      const [deployed, rolledBack] = await Promise.allSettled([deploy, rollback]);
      const outcomes = [deployed, rolledBack].map((outcome) => outcome.status);
      expect(outcomes.filter((status) => status === "fulfilled"), `round ${round}`).toHaveLength(1);
      const loss = [deployed, rolledBack].find((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected")!.reason as Error;
      expect(loss).toBeInstanceOf(ConflictError);
      const production = (await resources().getByLabel("race-rb", "production")).version;
      expect(loss.message).toContain(`points at version ${production}, not version ${current} as expected`);
      const [latest] = await resources().events("race-rb", 1);
      if (deployed.status === "fulfilled") {
        expect(production).toBe(deployed.value.version);
        expect(latest).toMatchObject({ kind: "labelled", actor: `cycle:round-${round}`, fromVersion: current, toVersion: deployed.value.version });
        expect(await rowCounts("race-rb")).toEqual({ versions: before.versions + 1, labels: before.labels, events: before.events + 2 });
      } else {
        expect(production).toBe(1);
        expect(latest).toMatchObject({ kind: "rolled_back", actor: `user:round-${round}`, fromVersion: current, toVersion: 1 });
        // The losing deploy's version was in the same transaction as its label move: it is gone too.
        expect(await rowCounts("race-rb")).toEqual({ versions: before.versions, labels: before.labels, events: before.events + 1 });
        await resources().moveLabel({ name: "race-rb", label: "production", toVersion: current, actor: "test" });
      }
    }
  });

  test("two deploys racing with label moves: one wins, the other's conflict names the winner's version", async () => {
    await seed("race-deploys", 1);
    const attempts = await Promise.allSettled(
      ["a", "b"].map((who) => resources().moveLabel({ name: "race-deploys", label: "candidate", toVersion: 1, expectedVersion: null, actor: who })),
    );
    expect(attempts.filter((attempt) => attempt.status === "fulfilled")).toHaveLength(1);
    const loss = attempts.find((attempt): attempt is PromiseRejectedResult => attempt.status === "rejected")!.reason as Error;
    expect(loss).toBeInstanceOf(ConflictError);
    expect(loss.message).toMatch(/candidate/);
    expect((await resources().events("race-deploys")).filter((event) => event.label === "candidate")).toHaveLength(1);
  });

  test("published versions and the audit trail cannot be edited or deleted, even with SQL", async () => {
    await seed("frozen", 1);
    const db = handle.store.db;
    await expect(sql`UPDATE resource_versions SET note = 'edited' WHERE name = 'frozen'`.execute(db)).rejects.toThrow(/resource_versions rows are append-only/);
    await expect(sql`DELETE FROM resource_versions WHERE name = 'frozen'`.execute(db)).rejects.toThrow(/append-only/);
    await expect(sql`UPDATE resource_events SET actor = 'someone else' WHERE name = 'frozen'`.execute(db)).rejects.toThrow(/resource_events rows are append-only/);
    await expect(sql`DELETE FROM resource_events WHERE name = 'frozen'`.execute(db)).rejects.toThrow(/append-only/);
    expect((await resources().getVersion("frozen", 1)).note).toBeNull();
    expect(await resources().events("frozen")).toHaveLength(2);
  });

  test("the history of an unknown resource is a NotFound error", async () => {
    await expect(resources().events("never-published")).rejects.toThrow(new NotFoundError('Resource "never-published" does not exist.'));
  });
});

import { randomBytes } from "node:crypto";
import { WorkflowFailedError } from "@temporalio/client";
import { afterAll, beforeAll, expect, test } from "vitest";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import type { RunningWorker } from "../../runtime/worker.ts";
import type { rollbackPrompt } from "../../workflows/rollback-prompt.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, startTestWorker, testConfig } from "../support/temporal.ts";
import { postAnalyzerPrompt, publishPostAnalyzer } from "./support.ts";

const NAME = postAnalyzer.prompt.resource;
const config = testConfig();
let db: TestStore;
let worker: RunningWorker;
let temporal: Awaited<ReturnType<typeof connectClient>>;

beforeAll(async () => {
  db = await openTestStore("pglite");
  const variant = (text: string) => postAnalyzerPrompt(`- technology: ${text}\n- startups: founders\n- product_management: roadmaps\n- general: anything else`);
  await publishPostAnalyzer(db.store, [postAnalyzer.prompt.seed, variant("code"), variant("chips")]);
  temporal = await connectClient(config);
  worker = await startTestWorker(config, db.store);
});
afterAll(async () => {
  await worker?.stop();
  await temporal?.close();
  await db?.close();
});

function runRollback(input: Parameters<typeof rollbackPrompt>[0]) {
  return temporal.client.workflow.execute<typeof rollbackPrompt>("rollbackPrompt", {
    taskQueue: config.temporal.taskQueue,
    workflowId: `rollback-${randomBytes(4).toString("hex")}`,
    args: [input],
  });
}

test("the rollbackPrompt workflow moves production back through the store operation, audited with the workflow as actor", async () => {
  const workflowId = `rollback-${randomBytes(4).toString("hex")}`;
  const result = await temporal.client.workflow.execute<typeof rollbackPrompt>("rollbackPrompt", {
    taskQueue: config.temporal.taskQueue,
    workflowId,
    args: [{ agent: "post-analyzer", toVersion: 1, expectedVersion: 3, reason: "alert: accuracy dropped" }],
  });
  expect(result).toMatchObject({ resource: NAME, label: "production", fromVersion: 3, toVersion: 1 });
  expect((await db.store.resources.getByLabel(NAME, "production")).version).toBe(1);
  const [latest] = await db.store.resources.events(NAME, 1);
  expect(latest).toMatchObject({ id: result.eventId, kind: "rolled_back", actor: `workflow:${workflowId}`, reason: "alert: accuracy dropped", fromVersion: 3, toVersion: 1 });
});

test("bad input and a lost compare-and-set fail the workflow at once, without retries, and change nothing", async () => {
  const before = await db.store.resources.events(NAME);
  const failures = await Promise.all([
    runRollback({ agent: "post-analyzer", toVersion: 2 }).catch((error: unknown) => error),
    runRollback({ agent: "nope", toVersion: 1 }).catch((error: unknown) => error),
    runRollback({ agent: "post-analyzer", toVersion: 1, expectedVersion: 3, actor: "user:late" }).catch((error: unknown) => error),
  ]);
  const causes = failures.map((failure) => {
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    return (failure as WorkflowFailedError).cause?.cause as { type?: string; message: string; nonRetryable?: boolean };
  });
  expect(causes.map((cause) => [cause.type, cause.nonRetryable])).toEqual([
    ["InvalidInputError", true],
    ["NotFoundError", true],
    ["ConflictError", true],
  ]);
  expect(causes[0]!.message).toContain("it points at version 1, and version 2 is not earlier");
  expect(causes[1]!.message).toBe('Unknown agent "nope". Known agents: post-analyzer, funding-extractor, support-reply.');
  expect(causes[2]!.message).toContain("points at version 1, not version 3 as expected");
  expect(await db.store.resources.events(NAME)).toEqual(before);
});

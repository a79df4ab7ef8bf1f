import { afterEach, expect, test } from "vitest";
import { readDatasetFile } from "../../agents/dataset-file.ts";
import { createLanguageModel } from "../../agents/models/index.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { startCycle } from "../../runtime/cycles.ts";
import type { RunningWorker } from "../../runtime/worker.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, startTestWorker, testConfig } from "../support/temporal.ts";

let db: TestStore | undefined;
let worker: RunningWorker | undefined;

afterEach(async () => {
  await worker?.stop();
  worker = undefined;
  await db?.close();
});

// The fake-keyword model rewards exactly the edits llm-free makes; this model only copies the nearest
// demonstration, so a lift on the test split is the demonstrations generalising to posts they do not show.
test("few-shot demonstrations chosen on train lift a nearest-neighbour model on the unseen test split (real Python optimizer, real dev server)", async () => {
  db = await openTestStore("pglite");
  // few-shot demonstrates the fit runs the model got right, here by chance (1 in 12 label pairs): the smallest
  // dev share leaves the most of them (15), and one child shows them all (up to maxExamples).
  const config = testConfig({ model: { provider: "fake-nearest-neighbour" }, optimizer: { algorithm: "few-shot", maxExamples: 20, candidates: 1, devFraction: 0.05 } });
  const temporal = await connectClient(config);
  try {
    worker = await startTestWorker(config, db.store, createLanguageModel(config));
    const handle = await startCycle({ config, store: db.store, client: temporal.client, agent: "post-analyzer", dataset: "posts" });
    const result = await handle.result();

    expect(result.outcome).toBe("deployed");
    const tasks = await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer);
    const testPosts = tasks.filter((task) => task.split === "test");
    expect(testPosts).toHaveLength(60);
    const deployed = await db.store.resources.getByLabel("post-analyzer", "production");
    expect(deployed.version).toBe(2);
    // The optimizer learnt from train only: no test post is among the demonstrations it wrote.
    const examples = deployed.content.components.examples!;
    expect(examples).toMatch(/Answer:/);
    expect(testPosts.filter((task) => examples.includes(String(task.input.content)))).toEqual([]);

    const lift = result.test!;
    expect(lift.tasks).toBe(60);
    expect(lift.difference.low, `paired difference on the test split: ${JSON.stringify(lift)}`).toBeGreaterThan(0);
  } finally {
    await temporal.close();
  }
});

import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ResultPromise } from "execa";
import { afterEach, expect, test } from "vitest";
import { startCycle } from "../../runtime/cycles.ts";
import { type FakeReflection, startFakeReflection } from "../support/fake-reflection.ts";
import { helpfulReflection, importGepaPosts } from "../support/gepa-scenario.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, testConfig } from "../support/temporal.ts";
import { killWorkers, spawnWorker } from "../support/worker-process.ts";

let db: TestStore | undefined;
let reflection: FakeReflection | undefined;
const children: ResultPromise[] = [];

afterEach(async () => {
  await killWorkers(children);
  await reflection?.close();
  await db?.close();
});

test("killing the worker while a GEPA reflection is in flight: the search resumes at that step, no finished reflection or agent run is done again", async () => {
  db = await openTestStore("pglite");
  reflection = await startFakeReflection(helpfulReflection);
  // The scenario and seed of test/workflows/gepa-search.test.ts: three reflections, then a merge.
  const optimizer = { algorithm: "gepa", seed: 2, budget: 40, llm: { baseUrl: reflection.baseUrl } };
  const config = testConfig({ optimizer });
  const overrides = { dataDir: config.dataDir, temporal: { address: config.temporal.address, taskQueue: config.temporal.taskQueue }, model: { provider: "fake" }, optimizer };
  const ids = await importGepaPosts(db.store, "gepa");
  const runLog = join(mkdtempSync(join(tmpdir(), "agl-runs-")), "runs.log");
  const temporal = await connectClient(config);
  try {
    const secondReflection = reflection.holdRequest(2);
    const { child: first } = await spawnWorker(children, overrides, db.connection, 0, { runLog });
    // Heartbeats come every 2 s: a 5 s timeout never expires on a live worker, and frees a dead one's step soon.
    const handle = await startCycle({ config, store: db.store, client: temporal.client, agent: "post-analyzer", dataset: "gepa", settings: { heartbeatTimeoutSeconds: 5 } });
    await secondReflection;
    first.kill("SIGKILL");
    await first.catch(() => undefined);
    const searchedBeforeCrash = await db.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "search" });

    await spawnWorker(children, overrides, db.connection, 0, { runLog });
    // The step in flight is retried on the new worker, which asks the reflection model again; the killed
    // worker's optimizer child, still waiting for the held answer, then gets it too.
    for (let tries = 0; reflection.requests.length < 3; tries++) {
      expect(tries, "the reflection was never retried").toBeLessThan(1200);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    reflection.release();
    const result = await handle.result();

    const steps = result.search!.rounds.map((round) => round.gepa!);
    expect(steps.map((step) => [step.step, step.component ?? step.ancestor, step.child, step.accepted])).toEqual([
      ["reflect", "instructions", "r1c1", false],
      ["reflect", "categories", "r2c1", true],
      ["reflect", "sentiments", "r3c1", true],
      ["merge", "incumbent", "r4c1", true],
    ]);
    // Reflections: the first was not asked again; the second twice (in flight at the crash, then by the retry); the third once.
    expect(reflection.requests.map((request) => request.component)).toEqual(["instructions", "categories", "categories", "sentiments"]);

    // Before the crash the first iteration had run its child on the minibatch; none of those runs was redone.
    expect(searchedBeforeCrash.map((rollout) => rollout.candidateId)).toEqual(["r1c1", "r1c1", "r1c1", "r1c1"]);
    const searched = await db.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "search" });
    expect(new Set(searched.map((rollout) => `${rollout.candidateId}/${rollout.taskId}`)).size).toBe(searched.length);
    expect(searched).toHaveLength(steps.at(-1)!.spent);
    const collected = await db.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "collect" });
    const validated = await db.store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "validate" });
    expect(collected).toHaveLength(ids.dev.length + ids.fit.length);

    // Agent runs counted at the model, in both workers: one per stored rollout, plus the cycle's probe run (the
    // incumbent on the first train task, which collect runs again). Not one run of the killed worker was repeated.
    const runs = readFileSync(runLog, "utf8").split("\n").filter(Boolean);
    expect(runs).toHaveLength(1 + collected.length + searched.length + validated.length);
    const perPrompt = Map.groupBy(runs, (run) => run);
    expect([...perPrompt.values()].filter((same) => same.length > 1).map((same) => same.length)).toEqual([2]);

    // One optimizer request and response per step: the retried step reused its request id.
    const prefix = handle.workflowId.replace(/[^A-Za-z0-9._-]+/g, "_");
    const files = readdirSync(join(config.dataDir, "work", "optimizer")).filter((file) => file.startsWith(prefix) && !file.endsWith(".tmp"));
    expect(files.sort()).toEqual(
      ["1_reflect", "2_reflect", "3_reflect", "4_merge"].flatMap((step) => [`${prefix}_gepa_${step}.request.json`, `${prefix}_gepa_${step}.response.json`]).sort(),
    );
  } finally {
    await temporal.close();
  }
});

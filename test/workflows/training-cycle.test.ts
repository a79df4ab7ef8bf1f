import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { WorkflowFailedError } from "@temporalio/client";
import { describe, expect, test } from "vitest";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { textModel } from "../../agents/models/text-model.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { createAgentRegistry } from "../../agents/registry.ts";
import { cycleSettings, queryProgress, rootCauseMessage, startCycle } from "../../runtime/cycles.ts";
import { ConflictError } from "../../store/errors.ts";
import type { trainingCycle } from "../../workflows/training-cycle.ts";
import { importSubset } from "../support/datasets.ts";
import { testConfig, workerPerTest } from "../support/temporal.ts";

/** A FAKE model that refuses the calls `fails` says so, and answers the others like the keyword fake. */
function failingModel(fails: () => boolean) {
  const answering = fakeKeywordModel();
  return textModel("fake", "always-down", async (_turns, options) => {
    if (fails()) throw new Error("connection refused by the FAKE provider");
    const result = await answering.doGenerate(options);
    const text = result.content.find((part) => part.type === "text");
    return { text: text?.type === "text" ? text.text : "", inputTokens: 1, outputTokens: 1 };
  });
}

/**
 * The hash salt of the coin model. Picked (among a-f) so that in this cycle a finalist's validation mean
 * happens to beat the incumbent's by more than 0.02: the situation the gate must not mistake for a gain.
 */
const NOISE_SALT = "a";

/** A FAKE model that answers every label field with a label picked by a hash of the prompt and the post: pure noise. */
function coinModel() {
  return textModel("fake", "coin", async (turns, options) => {
    const schema = (options.responseFormat?.type === "json" ? options.responseFormat.schema : undefined) as { properties?: Record<string, { enum?: string[] }> } | undefined;
    const seed = turns.map((turn) => turn.text).join("\n");
    const answer = Object.fromEntries(
      Object.entries(schema?.properties ?? {}).map(([field, property]) => {
        const labels = property.enum ?? [""];
        return [field, labels[createHash("sha256").update(`${NOISE_SALT}${field}\u0000${seed}`).digest().readUInt32BE(0) % labels.length]];
      }),
    );
    return { text: JSON.stringify(answer), inputTokens: 1, outputTokens: 1 };
  });
}

describe("training cycle workflow (real Temporal dev server, fake model)", () => {
  const fixture = workerPerTest();

  test("a cycle on the bundled data set publishes the better candidate as v2 and labels it production", async () => {
    const config = testConfig();
    const client = await fixture.start(config);
    const handle = await startCycle({ config, store: fixture.db().store, client, agent: "post-analyzer", dataset: "posts" });
    const result = await handle.result();

    expect(result.outcome).toBe("deployed");
    expect(result.deployedVersion).toBe(2);
    // The gate: the chosen finalist's paired gain over the incumbent, its lower bound corrected for the finalists.
    const gate = result.gate!;
    const finalists = result.search!.finalists.length;
    expect(gate).toMatchObject({ deploy: true, chosen: result.best!.contender, confidence: 0.9, margin: 0, repeats: 1 });
    expect(gate.correctedConfidence).toBeCloseTo(1 - 0.1 / finalists, 12);
    const chosen = gate.comparisons.find((comparison) => comparison.contender === gate.chosen)!;
    expect(chosen.tasks).toBe(60);
    expect(chosen.meanDifference).toBeCloseTo(result.best!.meanReward - result.baseline!.meanReward, 10);
    expect(chosen.lowerBound!).toBeGreaterThan(0);
    expect(chosen.lowerBound!).toBeLessThan(chosen.meanDifference);
    // After the decision, the test split (60 posts neither the optimizer nor the gate saw) measured both versions.
    expect(result.test).toMatchObject({ tasks: 60, incumbent: { n: 60 }, deployed: { n: 60 }, difference: { n: 60 } });
    expect(result.test!.difference.mean).toBeCloseTo(result.test!.deployed.mean - result.test!.incumbent.mean, 10);
    const tested = await fixture.db().store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "test" });
    expect(tested).toHaveLength(120);
    expect(new Set(tested.map((rollout) => rollout.candidateId ?? `v${rollout.resourceVersion}`))).toEqual(new Set(["v1", result.best!.contender]));
    expect(result.detail).toMatch(/^deployed v2 \(from v1\): r1c\d+ vs incumbent on 60 validation tasks: gain \+\d\.\d{3}, lower bound \+\d\.\d{3} at 9\d(\.\d)?%, above margin 0 \(paired t over validation tasks, one-sided, Bonferroni over \d finalists?\); test split \(60 tasks, 95% intervals\): v1 -?\d\.\d{3} \[/);
    const production = await fixture.db().store.resources.getByLabel("post-analyzer", "production");
    expect(production).toMatchObject({ version: 2, parentVersion: 1, createdBy: `cycle:${handle.workflowId}` });
    expect(production.metrics).toMatchObject({ validation: { contender: result.best!.contender }, gate: { chosen: result.best!.contender }, test: { tasks: 60 } });
    const [published] = await fixture.db().store.resources.events("post-analyzer", 1);
    expect(published!.reason).toContain(`cycle ${handle.workflowId} deployed candidate ${result.best!.contender}: `);
    expect(published!.reason).toContain("test split (60 tasks, 95% intervals)");
    const candidate = await fixture.db().store.cycles.candidate(handle.workflowId, result.best!.contender);
    expect(production.content).toEqual(candidate.content);

    const collected = await fixture.db().store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "collect" });
    expect(collected).toHaveLength(180);
    expect(new Set(collected.map((r) => r.taskId)).size).toBe(180);
    expect(collected.every((r) => r.resourceVersion === 1 && r.candidateId === null && r.model === "fake/fake-keyword")).toBe(true);
    expect(collected.every((r) => r.rewards.length === 1 && r.rewards[0]!.reason.length > 0)).toBe(true);

    // The search ran every candidate on the dev tasks (train tasks the optimizer never saw); the best went on to validation.
    const candidates = await fixture.db().store.cycles.candidates(handle.workflowId);
    const [round] = result.search!.rounds;
    expect(round!.scores.map((score) => score.contender)).toEqual(["incumbent", ...candidates.map((candidate) => candidate.id)]);
    const devTasks = round!.scores[0]!.rollouts;
    expect(devTasks).toBeGreaterThan(20);
    const searched = await fixture.db().store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "search" });
    expect(searched).toHaveLength(devTasks * candidates.length);
    const fitTasks = new Set(collected.map((r) => r.taskId).filter((taskId) => !searched.some((s) => s.taskId === taskId)));
    expect(fitTasks.size).toBe(180 - devTasks);
    expect(result.search!.finalists).toEqual(round!.beam.filter((member) => member !== "incumbent"));
    expect(result.search!.finalists).toContain(result.best!.contender);
    const validated = await fixture.db().store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "validate" });
    expect(validated).toHaveLength(60 * (1 + result.search!.finalists.length));
    for (const rollout of validated) {
      // Every rollout records the prompt it ran with: the published incumbent, or an unpublished candidate.
      const ranIncumbent = rollout.resourceVersion === 1 && rollout.candidateId === null;
      const ranCandidate = rollout.resourceVersion === null && rollout.candidateId !== null;
      expect(ranIncumbent || ranCandidate).toBe(true);
    }

    const cycle = await fixture.db().store.cycles.get(handle.workflowId);
    expect(cycle).toMatchObject({ outcome: "deployed", deployedVersion: 2, incumbentVersion: 1, phase: "done" });
    expect(await fixture.db().store.cycles.leaseHolder("post-analyzer")).toBeUndefined();
    // Progress went out for every phase the cycle entered, in order, as activities of its own beside the work
    // (a local activity would have held each phase's batches back until it ended).
    const progressWrites = ((await handle.fetchHistory()).events ?? []).flatMap((event) => {
      const scheduled = event.activityTaskScheduledEventAttributes;
      if (scheduled?.activityType?.name !== "recordCycle") return [];
      return [JSON.parse(new TextDecoder().decode(scheduled.input!.payloads![0]!.data!)).progress.phase as string];
    });
    expect(progressWrites).toEqual(["collect", "train", "search", "validate", "test", "deploy"]);
  });

  test("the gate keeps the incumbent when no candidate beats it by the margin", async () => {
    const config = testConfig({ cycle: { margin: 2 } });
    const client = await fixture.start(config);
    const handle = await startCycle({ config, store: fixture.db().store, client, agent: "post-analyzer", dataset: "posts" });
    const result = await handle.result();

    expect(result.outcome).toBe("kept");
    expect(result.detail).toMatch(/^kept v1: r1c\d+ vs incumbent on 60 validation tasks: gain [+-]\d\.\d{3}, lower bound [+-]\d\.\d{3} at 9\d(\.\d)?%, not above margin 2 /);
    expect(result.gate).toMatchObject({ deploy: false, margin: 2 });
    // Nothing is measured on the test split for a cycle that deployed nothing.
    expect(result.test).toBeUndefined();
    expect(await fixture.db().store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "test" })).toEqual([]);
    expect(result.deployedVersion).toBeNull();
    expect((await fixture.db().store.resources.listVersions("post-analyzer")).map((v) => v.version)).toEqual([1]);
    expect((await fixture.db().store.resources.getByLabel("post-analyzer", "production")).version).toBe(1);
  });

  test("a search over several rounds refines the beam: later rounds improve beam members, every round is recorded", async () => {
    const config = testConfig({ optimizer: { rounds: 3, beamWidth: 2, candidates: 2 } });
    await importSubset(fixture.db().store, "rounds", 60, 20);
    const client = await fixture.start(config);
    const handle = await startCycle({ config, store: fixture.db().store, client, agent: "post-analyzer", dataset: "rounds" });
    const result = await handle.result();

    const rounds = result.search!.rounds;
    expect(rounds.map((round) => round.round)).toEqual([1, 2, 3]);
    const candidates = await fixture.db().store.cycles.candidates(handle.workflowId);
    for (const round of rounds.slice(1)) {
      const previousBeam = rounds[round.round - 2]!.beam;
      const children = candidates.filter((candidate) => candidate.details.round === round.round);
      expect(children.length).toBeGreaterThan(0);
      // Each child improves a member of the beam the previous round kept.
      for (const child of children) expect(previousBeam).toContain(child.details.parent);
      expect(children.map((child) => child.id).every((id) => id.startsWith(`r${round.round}c`))).toBe(true);
    }
    // The beam only ever keeps the best dev scores seen so far.
    const allScores = rounds.flatMap((round) => round.scores);
    const bestDev = Math.max(...allScores.map((score) => score.meanReward));
    expect(allScores.find((score) => score.contender === rounds.at(-1)!.beam[0])!.meanReward).toBe(bestDev);
    const searched = await fixture.db().store.rollouts.listForCycle({ cycleId: handle.workflowId, phase: "search" });
    expect(searched).toHaveLength(rounds[0]!.scores[0]!.rollouts * candidates.length);
    expect(result.search!.finalists.length).toBeGreaterThan(0);
    expect(result.search!.finalists.length).toBeLessThanOrEqual(2);
  });

  test("one cycle per agent at a time: a second start is refused, a raw second workflow ends skipped, progress is queryable", async () => {
    const config = testConfig();
    await importSubset(fixture.db().store, "mini", 8, 4);
    const client = await fixture.start(config, fakeKeywordModel({ latencyMs: 150 }));
    const first = await startCycle({ config, store: fixture.db().store, client, agent: "post-analyzer", dataset: "mini", settings: { batchSize: 2, concurrency: 1, parallelBatches: 1 } });

    let progress = await queryProgress(first);
    for (let tries = 0; progress?.phase !== "collect" || progress.progress.done < 2; tries++) {
      expect(tries).toBeLessThan(100);
      await sleep(100);
      progress = await queryProgress(first);
    }
    expect(progress).toMatchObject({ cycleId: first.workflowId, agent: "post-analyzer", phase: "collect", incumbentVersion: 1, progress: { total: 8 } });

    await expect(startCycle({ config, store: fixture.db().store, client, agent: "post-analyzer", dataset: "mini" })).rejects.toThrow(ConflictError);
    // A start that skips the client's check (as a schedule's does) is refused by the workflow itself.
    const raced = await client.workflow.execute<typeof trainingCycle>("trainingCycle", {
      taskQueue: config.temporal.taskQueue,
      workflowId: `${first.workflowId}-raced`,
      args: [{ agent: "post-analyzer", dataset: "mini", trigger: "manual", settings: cycleSettings(config) }],
    });
    expect(raced).toMatchObject({ outcome: "skipped", detail: `cycle ${first.workflowId} is already running for post-analyzer` });
    expect((await fixture.db().store.cycles.get(`${first.workflowId}-raced`)).outcome).toBe("skipped");

    await first.cancel();
    await expect(first.result()).rejects.toThrow(WorkflowFailedError);
    const cancelled = await fixture.db().store.cycles.get(first.workflowId);
    expect(cancelled.outcome).toBe("cancelled");
    expect((await fixture.db().store.resources.listVersions("post-analyzer")).map((v) => v.version)).toEqual([1]);
    expect(await fixture.db().store.cycles.leaseHolder("post-analyzer")).toBeUndefined();
  });
  test("a model that does not answer fails the cycle before it collects, with the model's error; nothing is stored", async () => {
    const config = testConfig();
    const client = await fixture.start(config, failingModel(() => true));
    const handle = await startCycle({ config, store: fixture.db().store, client, agent: "post-analyzer", dataset: "posts" });
    const failure = await handle.result().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(rootCauseMessage(failure)).toMatch(/^Agent "post-analyzer" failed before the cycle collected anything \(model fake\/always-down\): .*connection refused by the FAKE provider/);
    expect(await fixture.db().store.rollouts.countForCycle(handle.workflowId)).toBe(0);
    expect(await fixture.db().store.cycles.get(handle.workflowId)).toMatchObject({ outcome: "failed", phase: "done" });
    expect(await fixture.db().store.resources.listVersions("post-analyzer")).toHaveLength(1);
  });

  test("a cycle whose every collect run failed is a failed cycle naming the first error, not a kept one", async () => {
    const config = testConfig();
    let calls = 0;
    // The probe's call answers; every later one fails, as a model that breaks after warming up would.
    const client = await fixture.start(config, failingModel(() => ++calls > 1));
    await importSubset(fixture.db().store, "tiny", 6, 3);
    const handle = await startCycle({ config, store: fixture.db().store, client, agent: "post-analyzer", dataset: "tiny" });
    const failure = await handle.result().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(rootCauseMessage(failure)).toMatch(/^Every one of the 6 agent runs of the collect phase failed; the first error: .*connection refused by the FAKE provider/);
    expect(await fixture.db().store.cycles.get(handle.workflowId)).toMatchObject({ outcome: "failed" });
  });

  test("an optimizer that cannot change the agent's prompt is refused before anything starts", async () => {
    const config = testConfig({ optimizer: { algorithm: "few-shot" } });
    const client = await fixture.start(config);
    const noDemonstrations = { ...postAnalyzer, prompt: { ...postAnalyzer.prompt, examplesComponent: null } };
    const refusing = { ...config, agents: createAgentRegistry([noDemonstrations]) };
    await expect(startCycle({ config: refusing, store: fixture.db().store, client, agent: "post-analyzer", dataset: "posts" })).rejects.toThrow(
      'optimizer "few-shot" cannot train agent "post-analyzer": the agent takes no demonstrations (prompt.examples is false)',
    );
    expect(await fixture.db().store.cycles.list({ limit: 5 })).toEqual([]);
  });
  test("the gate does not deploy noise: prompts that answer at random win by chance on the mean, not by a bound", async () => {
    // Every post gets a label drawn from a hash of the whole prompt and post: no prompt is better than another.
    const config = testConfig({ optimizer: { candidates: 6 } });
    const client = await fixture.start(config, coinModel());
    const handle = await startCycle({ config, store: fixture.db().store, client, agent: "post-analyzer", dataset: "posts" });
    const result = await handle.result();
    expect(result.outcome).toBe("kept");
    // The best finalist's validation mean beats the incumbent's by more than the old 0.02 margin: a raw comparison would have deployed it.
    expect(result.best!.meanReward).toBeGreaterThan(result.baseline!.meanReward + 0.02);
    const chosen = result.gate!.comparisons.find((comparison) => comparison.contender === result.gate!.chosen)!;
    expect(chosen.lowerBound!).toBeLessThanOrEqual(0);
    expect(await fixture.db().store.resources.listVersions("post-analyzer")).toHaveLength(1);
  });
});

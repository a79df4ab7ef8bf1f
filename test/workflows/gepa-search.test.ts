import { afterEach, describe, expect, test } from "vitest";
import { z } from "zod";
import { defineAgent } from "../../agents/define.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { createAgentRegistry } from "../../agents/registry.ts";
import type { LoadedConfig } from "../../config/load.ts";
import { startCycle } from "../../runtime/cycles.ts";
import { groundTruth } from "../../scorers/ground-truth.ts";
import type { CycleResult, GepaIteration } from "../../workflows/types.ts";
import { type FakeReflection, startFakeReflection } from "../support/fake-reflection.ts";
import { harmfulReflection, helpfulReflection, importGepaPosts } from "../support/gepa-scenario.ts";
import { testConfig, workerPerTest } from "../support/temporal.ts";

/** The seed whose draws take the scenario through two sibling children and their merge (test/support/gepa-scenario.ts). */
const SEED = 2;

describe("GEPA search in the training cycle (real Temporal dev server, fake agent model, FAKE reflection model)", () => {
  const fixture = workerPerTest();
  let reflection: FakeReflection | undefined;
  afterEach(async () => {
    await reflection?.close();
    reflection = undefined;
  });

  async function gepaCycle(rewrite: (component: string, current: string) => string, optimizer: Record<string, unknown>, config?: (base: LoadedConfig) => LoadedConfig) {
    reflection = await startFakeReflection(rewrite);
    const base = testConfig({ cycle: { margin: 2 }, optimizer: { algorithm: "gepa", seed: SEED, llm: { baseUrl: reflection.baseUrl }, ...optimizer } });
    const used = config ? config(base) : base;
    const client = await fixture.start(used);
    const run = async (dataset: string) => {
      const handle = await startCycle({ config: used, store: fixture.db().store, client, agent: used.agents.list()[0]!.id, dataset });
      return { cycleId: handle.workflowId, result: await handle.result() };
    };
    return { run };
  }

  const iterations = (result: CycleResult) => result.search!.rounds.map((round) => round.gepa!);
  const searchRuns = async (cycleId: string, candidateId: string) =>
    (await fixture.db().store.rollouts.listForCycle({ cycleId, phase: "search", candidateId })).map((rollout) => rollout.taskId!).sort();

  test("parents come from the Pareto front, a child joins the pool only after beating its parent on a minibatch, siblings that improved different components merge; the same seed gives the same search", async () => {
    const ids = await importGepaPosts(fixture.db().store, "gepa");
    const { run } = await gepaCycle(helpfulReflection, { budget: 40 });
    const { cycleId, result } = await run("gepa");
    const steps = iterations(result);
    const candidate = async (id: string) => (await fixture.db().store.cycles.candidate(cycleId, id)).content.components;
    const incumbent = postAnalyzer.prompt.seed.components;

    expect(steps.map((step) => [step.step, step.parents, step.component ?? step.ancestor, step.child, step.accepted])).toEqual([
      ["reflect", ["incumbent"], "instructions", "r1c1", false],
      ["reflect", ["incumbent"], "categories", "r2c1", true],
      ["reflect", ["incumbent"], "sentiments", "r3c1", true],
      ["merge", expect.arrayContaining(["r2c1", "r3c1"]), "incumbent", "r4c1", true],
    ]);
    for (const step of steps.filter((step) => step.step === "reflect")) expect(Object.keys(step.front)).toContain(step.parents[0]);
    // The incumbent is on the front while it is best on a dev task (the release post r2c1 breaks); once r3c1 matches it everywhere it is dropped.
    expect(steps[2]!.front).toEqual({ incumbent: 4, r2c1: 5 });
    expect(steps[3]!.front).toEqual({ r2c1: 4, r3c1: 4 });

    // Minibatches are train tasks outside the dev set; the rejected child (no better than its parent) never ran on a dev task.
    for (const step of steps.slice(0, 3)) expect(ids.fit).toEqual(expect.arrayContaining(step.minibatch.taskIds));
    expect(steps[0]!.minibatch.child).toBe(steps[0]!.minibatch.parent);
    expect(await searchRuns(cycleId, "r1c1")).toEqual([...steps[0]!.minibatch.taskIds].sort());
    expect(steps[1]!.minibatch.child).toBeGreaterThan(steps[1]!.minibatch.parent);
    expect(await searchRuns(cycleId, "r2c1")).toEqual([...steps[1]!.minibatch.taskIds, ...ids.dev].sort());
    expect(await candidate("r2c1")).toEqual({ ...incumbent, categories: expect.stringContaining("kubernetes") });

    // The merge takes categories from r2c1 and sentiments from r3c1, and is judged first on dev tasks the parents' scores are known for.
    expect(await candidate("r4c1")).toEqual({ ...incumbent, categories: (await candidate("r2c1")).categories, sentiments: (await candidate("r3c1")).sentiments });
    expect(ids.dev).toEqual(expect.arrayContaining(steps[3]!.minibatch.taskIds));
    expect(steps[3]!.minibatch.child).toBeGreaterThanOrEqual(steps[3]!.minibatch.parent);
    expect(await searchRuns(cycleId, "r4c1")).toEqual([...ids.dev].sort());
    expect(result.search!.rounds[3]!.scores.map((score) => score.contender)).toEqual(["incumbent", "r4c1"]);
    expect(result.search!.finalists[0]).toBe("r4c1");

    // The budget counts every agent run of the search, and the search stopped before an iteration it could not pay for.
    const searched = await fixture.db().store.rollouts.listForCycle({ cycleId, phase: "search" });
    expect(steps.at(-1)!.spent).toBe(searched.length);
    expect(steps.reduce((total, step) => total + step.agentRuns, 0)).toBe(searched.length);
    expect(searched.length).toBeLessThanOrEqual(40);

    // One reflection call per reflect step; each read its parent's minibatch runs with the scorer's reasons.
    expect(reflection!.requests.map((request) => request.component)).toEqual(["instructions", "categories", "sentiments"]);
    expect(reflection!.requests[1]!.current).toBe(incumbent.categories);
    expect(reflection!.requests[1]!.prompt).toMatch(/Message: "Post: Moved the \w+ cluster to kubernetes today, happy"\n {2}Answer: \{"category": ?"general", ?"sentiment": ?"positive"\}/);
    expect(reflection!.requests[1]!.prompt).toContain("category wrong (expected technology, got general)");

    // Replayed from the same seed, the search takes the same decisions.
    const again = await run("gepa");
    expect(again.result.search).toEqual(result.search);
    expect(await fixture.db().store.cycles.candidate(again.cycleId, "r4c1")).toMatchObject({ content: (await fixture.db().store.cycles.candidate(cycleId, "r4c1")).content });
  });

  test("a child worse than its parent on the minibatch is rejected without a dev evaluation; the search stops before an iteration the budget cannot pay for", async () => {
    const ids = await importGepaPosts(fixture.db().store, "gepa");
    const { run } = await gepaCycle(harmfulReflection, { budget: 15 });
    const { cycleId, result } = await run("gepa");
    const steps = iterations(result);

    const worse = steps.find((step) => step.component === "categories")!;
    expect(worse).toMatchObject({ parents: ["incumbent"], child: "r2c1", accepted: false });
    expect(worse.minibatch.child!).toBeLessThan(worse.minibatch.parent);
    expect(await searchRuns(cycleId, "r2c1")).toEqual([...worse.minibatch.taskIds].sort());
    expect(ids.dev.some((taskId) => worse.minibatch.taskIds.includes(taskId))).toBe(false);
    expect(steps.every((step: GepaIteration) => Object.keys(step.front).join() === "incumbent")).toBe(true);

    // Two rejected children cost 4 runs each; a third iteration could cost 4 + 6 dev runs, more than the 7 left.
    expect(steps.map((step) => [step.agentRuns, step.spent])).toEqual([
      [4, 4],
      [4, 8],
    ]);
    expect(result.search!.finalists).toEqual([]);
    expect(result).toMatchObject({ outcome: "kept", detail: "kept v1: no candidate scored above the incumbent on the dev tasks" });
  });

  test("a reflection model whose every answer is rejected ends the search once each component was tried twice, having run nothing", async () => {
    await importGepaPosts(fixture.db().store, "gepa");
    const { run } = await gepaCycle((_component, current) => current, { budget: 300 });
    const { result } = await run("gepa");
    const steps = iterations(result);

    expect(steps.map((step) => step.component)).toEqual(["instructions", "categories", "sentiments", "instructions", "categories", "sentiments"]);
    expect(steps.every((step) => step.child === null && step.agentRuns === 0 && step.llmCalls === 1)).toBe(true);
    expect(steps[0]!.note).toBe("incumbent: rewrite of 'instructions' rejected: changes nothing");
    expect(reflection!.requests).toHaveLength(6);
    expect(result).toMatchObject({ outcome: "kept", detail: "kept v1: no candidate scored above the incumbent on the dev tasks" });
  });

  test("a free-text agent: the reflection reads its replies and the scorer's reasons, and its child keeps the placeholders", async () => {
    const replier = defineAgent({
      id: "replier",
      description: "Replies to customer emails.",
      input: z.object({ email: z.string() }),
      output: "text",
      message: (input) => `Customer email:\n${input.email}`,
      prompt: { components: { instructions: "Reply to the customer in one friendly sentence.\n\n{{policy}}", policy: "Refunds within 30 days of delivery." }, examples: false, editable: ["instructions"] },
      scorers: [groundTruth()],
    });
    await fixture.db().store.datasets.importTasks({
      name: "emails",
      agent: "replier",
      source: "test",
      tasks: ["Where is my order?", "Can I get a refund?", "Do you ship abroad?", "My parcel arrived broken.", "How do I reset my password?", "Is the blue one back in stock?"].map((email, index) => ({
        id: `e${index}`,
        input: { email },
        expected: { text: "We are sorry; we will look into it today and write back." },
        split: index < 5 ? ("train" as const) : ("validation" as const),
      })),
    });
    const { run } = await gepaCycle((_component, current) => current.replace("one friendly sentence", "one friendly sentence that says what happens next"), { budget: 12, minibatchSize: 2 }, (base) => ({
      ...base,
      agents: createAgentRegistry([replier]),
    }));
    const { cycleId, result } = await run("emails");

    const [first] = iterations(result);
    expect(first).toMatchObject({ step: "reflect", parents: ["incumbent"], component: "instructions", child: "r1c1" });
    expect((await fixture.db().store.cycles.candidate(cycleId, "r1c1")).content.components).toEqual({
      instructions: "Reply to the customer in one friendly sentence that says what happens next.\n\n{{policy}}",
      policy: "Refunds within 30 days of delivery.",
    });
    const prompt = reflection!.requests[0]!.prompt;
    expect(prompt).toContain('Answer: "Re: ');
    expect(prompt).toContain("Keep every placeholder exactly as written ({{policy}})");
    expect(prompt).toContain("Reward: -1 (text wrong (expected We are sorry; we will look into it today and write back., got Re: Customer email: ");
  });
});

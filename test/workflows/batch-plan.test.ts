import { describe, expect, test } from "vitest";
import { balancedBatches, planBatches } from "../../workflows/batch-plan.ts";

const ids = (count: number, prefix = "t") => Array.from({ length: count }, (_, index) => `${prefix}${index + 1}`);

describe("balancedBatches", () => {
  test.each([
    [200, 25, 2],
    [200, 100, 2],
    [300, 100, 2],
    [150, 25, 2],
    [17, 4, 4],
    [7, 100, 2],
    [1, 20, 2],
    [64, 20, 1],
  ])("%i items, batches of at most %i, %i lanes: every item once, in order, even sizes, a whole number of rounds", (count, batchSize, lanes) => {
    const items = ids(count);
    const batches = balancedBatches(items, batchSize, lanes);
    expect(batches.flat()).toEqual(items);
    const sizes = batches.map((batch) => batch.length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(batchSize);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    if (count >= lanes) expect(batches.length % lanes).toBe(0);
    // No more batches than the cap needs, rounded up to the lanes.
    expect(batches.length).toBe(Math.min(count, lanes * Math.ceil(count / (lanes * batchSize))));
  });

  test("nothing to run makes no batch", () => {
    expect(balancedBatches([], 10, 2)).toEqual([]);
  });

  test("a phase of 300 runs in batches of at most 100 over 2 lanes is 4 batches of 75, not 100 + 100 + 100", () => {
    expect(balancedBatches(ids(300), 100, 2).map((batch) => batch.length)).toEqual([75, 75, 75, 75]);
  });
});

describe("planBatches", () => {
  test("three candidates on 50 tasks share two batches of 75 instead of three rounds of their own", () => {
    const jobs = ["c1", "c2", "c3"].map((candidateId) => ({ prompt: { candidateId }, taskIds: ids(50) }));
    const batches = planBatches(jobs, 100, 2);
    expect(batches).toEqual([
      [
        { prompt: { candidateId: "c1" }, taskIds: ids(50) },
        { prompt: { candidateId: "c2" }, taskIds: ids(25) },
      ],
      [
        { prompt: { candidateId: "c2" }, taskIds: ids(50).slice(25) },
        { prompt: { candidateId: "c3" }, taskIds: ids(50) },
      ],
    ]);
  });

  test("a repeat stays with its runs, and every (prompt, repeat, task) runs exactly once", () => {
    const jobs = [1, 2].flatMap((version) => [1, 2, 3].map((repeat) => ({ prompt: { version }, taskIds: ids(7), repeat })));
    const batches = planBatches(jobs, 5, 2);
    const runs = batches.flatMap((batch) => batch.flatMap((job) => job.taskIds.map((taskId) => `v${(job.prompt as { version: number }).version}#${job.repeat}:${taskId}`)));
    expect(runs).toEqual(jobs.flatMap((job) => job.taskIds.map((taskId) => `v${job.prompt.version}#${job.repeat}:${taskId}`)));
    expect(batches.every((batch) => batch.reduce((sum, job) => sum + job.taskIds.length, 0) <= 5)).toBe(true);
  });
});

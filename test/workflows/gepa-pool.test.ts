import { describe, expect, test } from "vitest";
import { findMerge, mergeKey, mergeMinibatch, minibatches, paretoFront, type PoolMember, seededRandom, selectParent } from "../../workflows/gepa-pool.ts";

const TASKS = ["t1", "t2", "t3", "t4"];

function member(id: string, rewards: number[], parents: string[] = [], fingerprint: Record<string, string> = {}): PoolMember {
  return { id, parents, fingerprint, dev: Object.fromEntries(TASKS.map((task, index) => [task, rewards[index]!])), meanReward: rewards.reduce((a, b) => a + b, 0) / rewards.length };
}

describe("GEPA's decisions (pure workflow code)", () => {
  test("the same seed draws the same numbers; another seed others", () => {
    const draws = (seed: number) => Array.from({ length: 5 }, seededRandom(seed).next);
    expect(draws(7)).toEqual(draws(7));
    expect(draws(8)).not.toEqual(draws(7));
    expect(draws(7).every((value) => value >= 0 && value < 1)).toBe(true);
  });

  test("a member is on the front when it is best on some task; one whose every win another member shares is dropped", () => {
    const pool = [member("incumbent", [0, 0, 1, 0]), member("a", [1, 0, 0, 0]), member("b", [0, 1, 0, 0]), member("c", [1, 1, 0, -1])];
    // t1: a, c; t2: b, c; t3: incumbent; t4: incumbent, a, b. a and b win nothing c or the incumbent does not: dropped, lowest score first.
    expect(paretoFront(pool, TASKS)).toEqual(
      new Map([
        ["incumbent", 2],
        ["c", 2],
      ]),
    );
    // A member that is best nowhere is not on the front; ties put every tied member on a task's front.
    expect(paretoFront([member("x", [1, 1, 1, 1]), member("y", [0, 0, 0, 0])], TASKS)).toEqual(new Map([["x", 4]]));
    expect(paretoFront([member("x", [1, 0, 1, 1]), member("y", [0, 1, 1, 1])], TASKS)).toEqual(
      new Map([
        ["x", 3],
        ["y", 3],
      ]),
    );
  });

  test("of two identical members the one with the lower score goes, so the front is never empty", () => {
    const front = paretoFront([member("a", [0, 1, 0, 1]), member("b", [0, 1, 0, 1])], TASKS);
    expect(front.size).toBe(1);
  });

  test("a parent is drawn in proportion to the tasks it wins", () => {
    const random = seededRandom(1);
    const front = new Map([
      ["a", 3],
      ["b", 1],
    ]);
    const picks = Array.from({ length: 4000 }, () => selectParent(front, random));
    const share = picks.filter((pick) => pick === "a").length / picks.length;
    expect(share).toBeGreaterThan(0.72);
    expect(share).toBeLessThan(0.78);
  });

  test("minibatches go through every task once per epoch, reshuffled each epoch", () => {
    const tasks = ["a", "b", "c", "d", "e", "f"];
    const next = minibatches(tasks, 2, seededRandom(3));
    const epoch = () => [next(), next(), next()];
    const [first, second] = [epoch(), epoch()];
    expect(first.flat().sort()).toEqual(tasks);
    expect(second.flat().sort()).toEqual(tasks);
    expect(second).not.toEqual(first);
    expect(minibatches(["a", "b"], 4, seededRandom(3))()).toEqual(["a", "b"]);
  });

  test("a merge pairs front members with a common ancestor, each having changed a component the other kept", () => {
    const base = { instructions: "i0", categories: "c0", sentiments: "s0" };
    const pool = [
      member("incumbent", [0, 0, 0, 0], [], base),
      member("r1c1", [1, 0, 0, 0], ["incumbent"], { ...base, categories: "c1" }),
      member("r2c1", [0, 1, 0, 0], ["incumbent"], { ...base, sentiments: "s1" }),
    ];
    const merge = findMerge(pool, ["r1c1", "r2c1"], new Set(), seededRandom(5));
    expect(merge?.ancestor).toBe("incumbent");
    expect([...merge!.parents].sort()).toEqual(["r1c1", "r2c1"]);

    // Tried before, or a pair where one descends from the other, or nothing to take from each: no merge.
    expect(findMerge(pool, ["r1c1", "r2c1"], new Set([mergeKey("r2c1", "r1c1", "incumbent")]), seededRandom(5))).toBeUndefined();
    const descendant = [...pool, member("r3c1", [1, 1, 0, 0], ["r1c1"], { ...base, categories: "c1", sentiments: "s2" })];
    expect(findMerge(descendant, ["r1c1", "r3c1"], new Set(), seededRandom(5))).toBeUndefined();
    const sameChange = [pool[0]!, pool[1]!, member("r2c1", [0, 1, 0, 0], ["incumbent"], { ...base, categories: "c1" })];
    expect(findMerge(sameChange, ["r1c1", "r2c1"], new Set(), seededRandom(5))).toBeUndefined();
    // An ancestor better than one of the pair is no base for a merge either.
    const betterAncestor = [member("incumbent", [1, 1, 1, 0], [], base), pool[1]!, pool[2]!];
    expect(findMerge(betterAncestor, ["r1c1", "r2c1"], new Set(), seededRandom(5))).toBeUndefined();
  });

  test("the better-scoring parent of a merge comes first", () => {
    const base = { categories: "c0", sentiments: "s0" };
    const pool = [
      member("incumbent", [0, 0, 0, 0], [], base),
      member("r1c1", [1, 0, 0, 0], ["incumbent"], { ...base, categories: "c1" }),
      member("r2c1", [0, 1, 1, 0], ["incumbent"], { ...base, sentiments: "s1" }),
    ];
    for (const seed of [1, 2, 3, 4]) expect(findMerge(pool, ["r1c1", "r2c1"], new Set(), seededRandom(seed))!.parents).toEqual(["r2c1", "r1c1"]);
  });

  test("a merge is judged on tasks where each parent is better and where they tie", () => {
    const first = { t1: 1, t2: 1, t3: 0, t4: 0, t5: 0, t6: 1 };
    const second = { t1: 0, t2: 0, t3: 1, t4: 1, t5: 0, t6: 1 };
    const chosen = mergeMinibatch(first, second, Object.keys(first), 3, seededRandom(9));
    expect(chosen).toHaveLength(3);
    expect(chosen.filter((task) => ["t1", "t2"].includes(task))).toHaveLength(1);
    expect(chosen.filter((task) => ["t3", "t4"].includes(task))).toHaveLength(1);
    expect(chosen.filter((task) => ["t5", "t6"].includes(task))).toHaveLength(1);
    expect(mergeMinibatch(first, second, Object.keys(first), 10, seededRandom(9)).sort()).toEqual(Object.keys(first));
  });
});

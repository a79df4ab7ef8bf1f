/**
 * The decisions of a GEPA search (Agrawal et al., 2025; gepa-ai/gepa), as plain functions of the pool and
 * a seeded random source: which parent to improve (Pareto front over per-task scores), which minibatch to
 * judge it on, which two members to merge and on which dev tasks. No I/O and no Temporal API, so the
 * workflow replays them exactly and tests call them directly.
 */

/** A pool member as the decisions see it. */
export interface PoolMember {
  id: string;
  /** One parent for a reflection's child, two for a merge's, none for the incumbent. */
  parents: string[];
  /** Component -> hash of its text (activities/gepa-activities.ts): equal hashes, equal text. */
  fingerprint: Record<string, string>;
  /** Reward on each dev task. */
  dev: Record<string, number>;
  /** Mean reward on the dev tasks: GEPA's aggregate score. */
  meanReward: number;
}

export interface Random {
  /** A float in [0, 1). */
  next(): number;
  pick<T>(items: readonly T[]): T;
  /** `count` distinct items, in the order drawn. */
  sample<T>(items: readonly T[], count: number): T[];
  shuffle<T>(items: readonly T[]): T[];
  /** One item, with probability proportional to its weight (uniform when every weight is 0). */
  weighted<T>(items: readonly T[], weights: readonly number[]): T;
}

/** mulberry32: a small PRNG whose whole state is one 32-bit integer, so a seed gives the same draws on every replay. */
export function seededRandom(seed: number): Random {
  let state = Math.trunc(seed) >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
  const index = (length: number) => Math.floor(next() * length);
  const shuffle = <T>(items: readonly T[]): T[] => {
    const copy = [...items];
    for (let last = copy.length - 1; last > 0; last--) {
      const other = index(last + 1);
      [copy[last], copy[other]] = [copy[other]!, copy[last]!];
    }
    return copy;
  };
  return {
    next,
    pick: (items) => items[index(items.length)]!,
    sample: (items, count) => shuffle(items).slice(0, count),
    shuffle,
    weighted(items, weights) {
      const total = weights.reduce((sum, weight) => sum + weight, 0);
      if (total <= 0) return items[index(items.length)]!;
      let point = next() * total;
      for (let at = 0; at < items.length; at++) {
        point -= weights[at]!;
        if (point < 0) return items[at]!;
      }
      return items.at(-1)!;
    },
  };
}

/**
 * GEPA's Pareto front: for each dev task the members with the best reward on it; members every one of
 * whose tasks another remaining member also wins are dropped (lowest aggregate score first, one at a
 * time, as GEPA's remove_dominated_programs does). Returns each remaining member (in pool order) with
 * the number of tasks it is best on.
 */
export function paretoFront(pool: readonly PoolMember[], taskIds: readonly string[]): Map<string, number> {
  const fronts = taskIds.map((taskId) => {
    const best = Math.max(...pool.map((member) => member.dev[taskId] ?? -1));
    return new Set(pool.filter((member) => (member.dev[taskId] ?? -1) === best).map((member) => member.id));
  });
  const onSomeFront = pool.filter((member) => fronts.some((front) => front.has(member.id)));
  const lowestFirst = [...onSomeFront].sort((a, b) => a.meanReward - b.meanReward);
  const dropped = new Set<string>();
  const dominated = (id: string) => {
    const others = (other: string) => other !== id && !dropped.has(other);
    return fronts.filter((front) => front.has(id)).every((front) => [...front].some(others));
  };
  for (let found = true; found; ) {
    found = false;
    for (const member of lowestFirst) {
      if (dropped.has(member.id) || !dominated(member.id)) continue;
      dropped.add(member.id);
      found = true;
      break;
    }
  }
  const wins = new Map<string, number>();
  for (const member of onSomeFront) {
    if (!dropped.has(member.id)) wins.set(member.id, fronts.filter((front) => front.has(member.id)).length);
  }
  return wins;
}

/** A member of the front, drawn with probability proportional to the number of dev tasks it is best on. */
export function selectParent(front: ReadonlyMap<string, number>, random: Random): string {
  return random.weighted([...front.keys()], [...front.values()]);
}

/**
 * GEPA's epoch-shuffled minibatches: each epoch is a fresh seeded shuffle of the tasks, taken `size` at
 * a time, so every task is seen once before any is seen again. Fewer tasks than `size`: all of them.
 */
export function minibatches(taskIds: readonly string[], size: number, random: Random): () => string[] {
  let order: string[] = [];
  let position = 0;
  return () => {
    if (taskIds.length <= size) return [...taskIds];
    if (position + size > order.length) {
      order = random.shuffle(taskIds);
      position = 0;
    }
    position += size;
    return order.slice(position - size, position);
  };
}

/** How many pair draws GEPA makes before it gives a merge up. */
const MERGE_ATTEMPTS = 10;

export function mergeKey(first: string, second: string, ancestor: string): string {
  return [first, second].sort().concat(ancestor).join("+");
}

/**
 * GEPA's merge candidates: two members of the front, neither descending from the other, with a common
 * ancestor that scores no better than either, that was not tried with them before, and for which some
 * component is the ancestor's in one of them and changed in the other (so the merge takes something from
 * each). The ancestor is drawn weighted by its score; the better-scoring member comes first (its text
 * wins where both changed a component; a tie is drawn).
 */
export function findMerge(
  pool: readonly PoolMember[],
  front: readonly string[],
  tried: ReadonlySet<string>,
  random: Random,
): { parents: [string, string]; ancestor: string } | undefined {
  const byId = new Map(pool.map((member) => [member.id, member]));
  if (front.length < 2 || pool.length < 3) return undefined;
  const ancestorsOf = (id: string): Set<string> => {
    const found = new Set<string>();
    const visit = (member: string) => {
      for (const parent of byId.get(member)!.parents) {
        if (!found.has(parent)) {
          found.add(parent);
          visit(parent);
        }
      }
    };
    visit(id);
    return found;
  };
  const score = (id: string) => byId.get(id)!.meanReward;
  const takesFromBoth = (ancestor: string, first: string, second: string) => {
    const [a, one, two] = [ancestor, first, second].map((id) => byId.get(id)!.fingerprint);
    return Object.keys(a!).some((name) => (a![name] === one![name] || a![name] === two![name]) && one![name] !== two![name]);
  };
  for (let attempt = 0; attempt < MERGE_ATTEMPTS; attempt++) {
    const [first, second] = random.sample(front, 2) as [string, string];
    const [ancestorsOfFirst, ancestorsOfSecond] = [ancestorsOf(first), ancestorsOf(second)];
    if (ancestorsOfFirst.has(second) || ancestorsOfSecond.has(first)) continue;
    const common = pool
      .map((member) => member.id)
      .filter(
        (id) =>
          ancestorsOfFirst.has(id) &&
          ancestorsOfSecond.has(id) &&
          !tried.has(mergeKey(first, second, id)) &&
          score(id) <= Math.min(score(first), score(second)) &&
          takesFromBoth(id, first, second),
      );
    if (common.length === 0) continue;
    // Rewards are in [-1, 1]: shifted to be weights.
    const ancestor = random.weighted(common, common.map((id) => score(id) + 1));
    const firstWins = score(first) > score(second) || (score(first) === score(second) && random.next() < 0.5);
    return { parents: firstWins ? [first, second] : [second, first], ancestor };
  }
  return undefined;
}

/**
 * GEPA's dev tasks to judge a merge on: about a third where the first parent is better, a third where the
 * second is, a third where they tie, then any others, drawn by the seeded source.
 */
export function mergeMinibatch(first: Record<string, number>, second: Record<string, number>, taskIds: readonly string[], size: number, random: Random): string[] {
  const buckets = [
    taskIds.filter((taskId) => first[taskId]! > second[taskId]!),
    taskIds.filter((taskId) => second[taskId]! > first[taskId]!),
    taskIds.filter((taskId) => first[taskId] === second[taskId]),
  ];
  const each = Math.max(1, Math.ceil(size / 3));
  const chosen: string[] = [];
  for (const bucket of buckets) chosen.push(...random.sample(bucket, Math.max(0, Math.min(each, size - chosen.length))));
  const rest = taskIds.filter((taskId) => !chosen.includes(taskId));
  return [...chosen, ...random.sample(rest, Math.max(0, size - chosen.length))];
}

import { isDevTask } from "../../activities/cycle-activities.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import type { Store } from "../../store/index.ts";

/**
 * Posts written so that each edit the FAKE reflection model makes has a known effect on the FAKE keyword
 * model (which answers the label whose `- label: description` line shares the most words with the post;
 * ties go to the label listed first, no evidence to the last one):
 * - kubernetes: technology posts no seed description matches (answered general): the categories edit fixes them;
 * - release: product_management posts that the categories edit breaks (release joins technology, listed first);
 * - thrilled: positive posts answered neutral: the sentiments edit fixes them;
 * - plain: answered right by every prompt.
 */
const KINDS = {
  kubernetes: { content: (word: string) => `Moved the ${word} cluster to kubernetes today, happy`, expected: { category: "technology", sentiment: "positive" } },
  release: { content: (word: string) => `Planned the ${word} release roadmaps, happy`, expected: { category: "product_management", sentiment: "positive" } },
  thrilled: { content: (word: string) => `Cooked ${word} for the family, thrilled`, expected: { category: "general", sentiment: "positive" } },
  plain: { content: (word: string) => `Notes on ${word} for the family, factual`, expected: { category: "general", sentiment: "neutral" } },
} as const;
type Kind = keyof typeof KINDS;

const WORDS = "alder aspen beech birch cedar cherry dogwood elm fir ginkgo hazel holly juniper larch linden maple oak pine poplar rowan spruce sumac walnut willow".split(" ");

/** Train tasks the search scores candidates on (dev), train tasks minibatches come from (fit), and held-out validation tasks. */
export const SCENARIO: Record<"dev" | "fit" | "validation", Kind[]> = {
  dev: ["kubernetes", "kubernetes", "release", "thrilled", "plain", "plain"],
  fit: ["kubernetes", "kubernetes", "kubernetes", "kubernetes", "thrilled", "thrilled", "thrilled", "thrilled"],
  validation: ["kubernetes", "kubernetes", "thrilled", "thrilled", "plain", "plain"],
};

/**
 * Imports the scenario as a data set of the post analyzer. Task ids are chosen so that the cycle's dev
 * split (a hash of the id, `optimizer.devFraction` 0.25) puts each task where SCENARIO says. Returns the ids by part.
 */
export async function importGepaPosts(store: Store, name: string): Promise<Record<keyof typeof SCENARIO, string[]>> {
  const ids = { dev: [] as string[], fit: [] as string[], validation: [] as string[] };
  const tasks = [];
  let next = 0;
  let word = 0;
  for (const part of ["dev", "fit", "validation"] as const) {
    for (const kind of SCENARIO[part]) {
      let id = `${kind}-${next++}`;
      while (part !== "validation" && isDevTask(id, 0.25) !== (part === "dev")) id = `${kind}-${next++}`;
      ids[part].push(id);
      const { content, expected } = KINDS[kind];
      tasks.push({ id, input: { content: content(WORDS[word++]!) }, expected, split: part === "validation" ? ("validation" as const) : ("train" as const) });
    }
  }
  await store.datasets.importTasks({ name, agent: postAnalyzer.id, source: "gepa test scenario", tasks });
  return ids;
}

const SEED_TECHNOLOGY = "- technology: software, hardware, AI, programming and gadgets";
const SEED_POSITIVE = "- positive: happy, excited, proud or grateful";

/** The FAKE reflection model's edits: the instructions get a harmless sentence, categories and sentiments the words the posts need. */
export function helpfulReflection(component: string, current: string): string {
  if (component === "categories") return current.replace(SEED_TECHNOLOGY, "- technology: software, hardware, AI, programming, gadgets, kubernetes, cluster and release");
  if (component === "sentiments") return current.replace(SEED_POSITIVE, "- positive: happy, excited, proud, grateful or thrilled");
  return `${current}\nRead the whole post before you answer.`;
}

/** A FAKE reflection whose categories edit hurts: family posts become technology (listed first, so it wins the tie). */
export function harmfulReflection(component: string, current: string): string {
  if (component === "categories") return current.replace(SEED_TECHNOLOGY, "- technology: software, hardware, AI, programming, gadgets and family");
  return helpfulReflection(component, current);
}

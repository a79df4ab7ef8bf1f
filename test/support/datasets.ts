import { readDatasetFile } from "../../agents/dataset-file.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import type { Store } from "../../store/index.ts";

/** Imports the first `train` and `validation` tasks of the bundled posts as a data set of its own (for `agent`); returns their ids. */
export async function importSubset(store: Store, name: string, train: number, validation: number, agent = postAnalyzer.id): Promise<{ train: string[]; validation: string[] }> {
  const all = await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer);
  const trainTasks = all.filter((t) => t.split === "train").slice(0, train);
  const validationTasks = all.filter((t) => t.split === "validation").slice(0, validation);
  await store.datasets.importTasks({ name, agent, source: "test subset", tasks: [...trainTasks, ...validationTasks] });
  return { train: trainTasks.map((t) => t.id), validation: validationTasks.map((t) => t.id) };
}

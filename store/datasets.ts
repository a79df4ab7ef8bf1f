import type { Kysely, Selectable } from "kysely";
import { ConflictError, NotFoundError } from "./errors.ts";
import type { Database, Split, TasksTable } from "./schema.ts";

export interface Task {
  id: string;
  input: Record<string, unknown>;
  expected: Record<string, unknown> | null;
  split: Split;
}

export interface DatasetSummary {
  name: string;
  agent: string;
  source: string;
  taskCount: number;
  splits: Record<string, number>;
  createdAt: Date;
}

const INSERT_CHUNK = 500;

export function datasetsStore(db: Kysely<Database>) {
  async function get(name: string): Promise<DatasetSummary> {
    const row = await db.selectFrom("datasets").selectAll().where("name", "=", name).executeTakeFirst();
    if (!row) {
      const names = (await db.selectFrom("datasets").select("name").orderBy("name").execute()).map((r) => r.name);
      throw new NotFoundError(`Dataset "${name}" does not exist${names.length ? ` (datasets: ${names.join(", ")})` : ""}. Import one with: agl dataset import FILE --name ${name}`);
    }
    const splits = await db
      .selectFrom("tasks")
      .select(["split", (eb) => eb.fn.countAll<number>().as("count")])
      .where("dataset", "=", name)
      .groupBy("split")
      .execute();
    return {
      name: row.name,
      agent: row.agent,
      source: row.source,
      taskCount: row.task_count,
      splits: splitCounts(splits),
      createdAt: row.created_at,
    };
  }

  async function exists(name: string): Promise<boolean> {
    return (await db.selectFrom("datasets").select("name").where("name", "=", name).executeTakeFirst()) !== undefined;
  }

  async function list(): Promise<DatasetSummary[]> {
    const names = await db.selectFrom("datasets").select("name").orderBy("name").execute();
    return Promise.all(names.map((row) => get(row.name)));
  }

  /** All tasks or none: the dataset row and its tasks are written in one transaction. */
  async function importTasks(input: { name: string; agent: string; source: string; tasks: Task[]; replace?: boolean }): Promise<DatasetSummary> {
    await db.transaction().execute(async (trx) => {
      const existing = await trx.selectFrom("datasets").select("name").where("name", "=", input.name).forUpdate().executeTakeFirst();
      if (existing && !input.replace) {
        throw new ConflictError(`Dataset "${input.name}" already exists. Choose another --name, or pass --replace to replace its tasks.`);
      }
      if (existing) await trx.deleteFrom("datasets").where("name", "=", input.name).execute();
      await trx.insertInto("datasets").values({ name: input.name, agent: input.agent, source: input.source, task_count: input.tasks.length }).execute();
      for (let start = 0; start < input.tasks.length; start += INSERT_CHUNK) {
        const chunk = input.tasks.slice(start, start + INSERT_CHUNK);
        await trx
          .insertInto("tasks")
          .values(
            chunk.map((task, offset) => ({
              dataset: input.name,
              id: task.id,
              position: start + offset,
              input: JSON.stringify(task.input),
              expected: task.expected === null ? null : JSON.stringify(task.expected),
              split: task.split,
            })),
          )
          .execute();
      }
    });
    return get(input.name);
  }

  async function taskIds(dataset: string, split: Split): Promise<string[]> {
    const rows = await db.selectFrom("tasks").select("id").where("dataset", "=", dataset).where("split", "=", split).orderBy("position").execute();
    return rows.map((row) => row.id);
  }

  async function tasks(dataset: string, ids: readonly string[]): Promise<Task[]> {
    if (ids.length === 0) return [];
    const rows = await db.selectFrom("tasks").selectAll().where("dataset", "=", dataset).where("id", "in", ids).orderBy("position").execute();
    return rows.map(toTask);
  }

  /** Every task of the data set, all splits, in the order they were imported. */
  async function allTasks(dataset: string): Promise<Task[]> {
    const rows = await db.selectFrom("tasks").selectAll().where("dataset", "=", dataset).orderBy("position").execute();
    return rows.map(toTask);
  }

  return { get, exists, list, importTasks, taskIds, tasks, allTasks };
}

function toTask(row: Selectable<TasksTable>): Task {
  return { id: row.id, input: row.input, expected: row.expected, split: row.split };
}

/** Task counts per split, always in the order train, validation, test (the database groups in any order). */
function splitCounts(rows: readonly { split: string; count: number | string | bigint }[]): Record<string, number> {
  const order = ["train", "validation", "test"];
  return Object.fromEntries([...rows].sort((a, b) => order.indexOf(a.split) - order.indexOf(b.split)).map((row) => [row.split, Number(row.count)]));
}

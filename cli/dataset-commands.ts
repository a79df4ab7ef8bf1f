import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { type Command, Option } from "commander";
import { readDatasetFile } from "../agents/dataset-file.ts";
import type { AgentDefinition } from "../agents/types.ts";
import { InvalidInputError } from "../store/errors.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";
import { formatTime, printJson, table } from "./output.ts";

export function registerDatasetCommands(program: Command): void {
  const dataset = program.command("dataset").description("import and list task sets");

  dataset
    .command("import")
    .description("import a JSONL file, one task a line; one bad line rejects the whole file")
    .argument("<file>", 'JSONL file: {"id": "...", "input": {...}, "expected": {...}, "split": "train|validation|test"}')
    .requiredOption("--name <name>", "data set name")
    .option("--agent <agent>", "the agent whose input schema validates the tasks (default: the registered agent whose input fits the first task)")
    .addOption(new Option("--split <split>", "split for lines that do not name one").choices(["train", "validation", "test"]).default("train"))
    .option("--replace", "replace the tasks of an existing data set of that name")
    .option("--json", "print machine-readable JSON")
    .action(async (file: string, options: { name: string; agent?: string; split: "train" | "validation" | "test"; replace?: boolean; json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(options.name)) {
        throw new InvalidInputError(`--name "${options.name}" must be 1-100 letters, digits, dots, dashes or underscores.`);
      }
      const agent = options.agent ? config.agents.get(options.agent) : await agentFitting(resolve(file), config.agents.list());
      // Validate the whole file before opening the store: a bad line writes nothing at all.
      const tasks = await readDatasetFile(resolve(file), agent, options.split);
      await withRuntime(config, { store: true, command: "agl dataset import" }, async (runtime) => {
        const summary = await runtime.store.datasets.importTasks({ name: options.name, agent: agent.id, source: resolve(file), tasks, replace: Boolean(options.replace) });
        if (options.json) return printJson({ ...summary, createdAt: summary.createdAt.toISOString() });
        console.log(`Imported ${summary.taskCount} tasks into "${summary.name}" for ${agent.id}: ${Object.entries(summary.splits).map(([split, count]) => `${split} ${count}`).join(", ")}.`);
      });
    });

  dataset
    .command("list")
    .description("data sets with their agent and split sizes")
    .option("--json", "print machine-readable JSON")
    .action(async (options: { json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      await withRuntime(config, { store: true, command: "agl dataset list" }, async (runtime) => {
        const datasets = await runtime.store.datasets.list();
        if (options.json) return printJson(datasets.map((d) => ({ ...d, createdAt: d.createdAt.toISOString() })));
        console.log(
          table(
            ["NAME", "AGENT", "TASKS", "SPLITS", "IMPORTED", "SOURCE"],
            datasets.map((d) => [d.name, d.agent, d.taskCount, Object.entries(d.splits).map(([s, n]) => `${s} ${n}`).join(", "), formatTime(d.createdAt), d.source]),
          ),
        );
      });
    });
}

/**
 * The agent a file is for when --agent is not given: the only one registered, else the only one whose
 * input schema accepts the file's first task. A file whose first task cannot be read goes to the first
 * agent, whose import then reports what is wrong with the file.
 */
async function agentFitting(path: string, agents: readonly AgentDefinition[]): Promise<AgentDefinition> {
  if (agents.length === 0) throw new InvalidInputError("No agent is registered to import tasks for: define one in agl.config.ts.");
  if (agents.length === 1) return agents[0]!;
  const input = await firstTaskInput(path);
  if (input === undefined) return agents[0]!;
  const fitting = agents.filter((agent) => agent.inputSchema.safeParse(input).success);
  if (fitting.length === 1) return fitting[0]!;
  const fits = fitting.length === 0 ? "no registered agent" : `several agents (${fitting.map((agent) => agent.id).join(", ")})`;
  throw new InvalidInputError(`${path}: the first task's input fits ${fits}; pass --agent (registered: ${agents.map((agent) => agent.id).join(", ")}).`);
}

async function firstTaskInput(path: string): Promise<unknown> {
  try {
    const line = (await readFile(path, "utf8")).split(/\r?\n/).find((text) => text.trim() !== "");
    return line === undefined ? undefined : (JSON.parse(line) as { input?: unknown }).input;
  } catch {
    return undefined;
  }
}

import type { Command } from "commander";
import { getAgent } from "../agents/registry.ts";
import { renderPrompt } from "../agents/prompt-template.ts";
import type { ResourceVersion } from "../store/resources.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";
import { positiveInteger } from "./cycle-commands.ts";
import { formatTime, printJson, table, truncate } from "./output.ts";

export function registerPromptCommands(program: Command): void {
  const prompts = program.command("prompts").description("the versions of an agent's prompt resource");

  prompts
    .command("list")
    .description("every version with its labels, creator, time and validation score")
    .argument("<agent>", "agent id (its prompt resource has the same name for the bundled agent)")
    .option("--json", "print machine-readable JSON")
    .action(async (agentId: string, options: { json?: boolean }, command: Command) => {
      const config = configFrom(command.optsWithGlobals<GlobalOptions>());
      const agent = getAgent(agentId);
      await withRuntime(config, { store: true, command: "agl prompts list" }, async (runtime) => {
        const versions = await runtime.store.resources.listVersions(agent.prompt.resource);
        if (options.json) return printJson(versions.map(versionJson));
        if (versions.length === 0) return console.log(`No versions of "${agent.prompt.resource}" yet: version 1 is published by the agent's first cycle.`);
        console.log(
          table(
            ["VERSION", "LABELS", "CREATED", "CREATED BY", "VALIDATION", "NOTE"],
            versions.map((v) => [`v${v.version}`, v.labels.join(","), formatTime(v.createdAt), v.createdBy, validationScore(v), truncate(v.note ?? "", 60)]),
          ),
        );
      });
    });

  prompts
    .command("show")
    .description("one version's components and the system prompt they render to")
    .argument("<agent>", "agent id")
    .option("--version <n>", "version number (default: the one labelled production)", (value) => positiveInteger(value, "--version"))
    .option("--label <label>", "the version a label points at", "production")
    .option("--json", "print machine-readable JSON")
    .action(async (agentId: string, options: { version?: number; label: string; json?: boolean }, command: Command) => {
      const config = configFrom(command.optsWithGlobals<GlobalOptions>());
      const agent = getAgent(agentId);
      await withRuntime(config, { store: true, command: "agl prompts show" }, async (runtime) => {
        const resources = runtime.store.resources;
        const version = options.version ? await resources.getVersion(agent.prompt.resource, options.version) : await resources.getByLabel(agent.prompt.resource, options.label);
        if (options.json) return printJson({ ...versionJson(version), rendered: renderPrompt(version.content) });
        console.log(`${version.name} v${version.version}${version.labels.length ? ` [${version.labels.join(", ")}]` : ""}`);
        console.log(`created ${formatTime(version.createdAt)} by ${version.createdBy}${version.parentVersion ? `, from v${version.parentVersion}` : ""}`);
        if (version.note) console.log(`note: ${version.note}`);
        for (const [name, text] of Object.entries(version.content.components)) {
          console.log(`\n── ${name} ${"─".repeat(Math.max(0, 60 - name.length))}\n${text || "(empty)"}`);
        }
        console.log(`\n── rendered system prompt ${"─".repeat(44)}\n${renderPrompt(version.content)}`);
      });
    });
}

function validationScore(version: ResourceVersion): string {
  const validation = version.metrics.validation as { meanReward?: number } | undefined;
  return typeof validation?.meanReward === "number" ? validation.meanReward.toFixed(3) : "";
}

/** The documented JSON form of a version (README: "JSON output"). */
export function versionJson(version: ResourceVersion) {
  return {
    name: version.name,
    version: version.version,
    labels: version.labels,
    parentVersion: version.parentVersion,
    createdBy: version.createdBy,
    createdAt: version.createdAt.toISOString(),
    note: version.note,
    metrics: version.metrics,
    content: version.content,
  };
}

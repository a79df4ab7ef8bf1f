import { readFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { resolve } from "node:path";
import type { Command } from "commander";
import { diffPromptContent } from "../agents/prompt-diff.ts";
import { renderPrompt } from "../agents/prompt-template.ts";
import { validatePromptContent } from "../agents/prompt-validation.ts";
import { InvalidInputError } from "../store/errors.ts";
import { eventJson, LABEL_PATTERN, LABEL_RULE, type LabelMoved, PRODUCTION, type ResourceVersion, versionJson } from "../store/resources.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";
import { positiveInteger } from "./cycle-commands.ts";
import { formatTime, printJson, table, truncate } from "./output.ts";

interface ChangeOptions {
  actor?: string;
  reason?: string;
  expectedVersion?: number;
  json?: boolean;
}

export function registerPromptCommands(program: Command): void {
  const prompts = program.command("prompts").description("the versions of an agent's prompt resource");
  const versionOption = (flag: string) => (value: string) => positiveInteger(value, flag);

  prompts
    .command("list")
    .description("every version with its labels, creator, time and validation score")
    .argument("<agent>", "agent id (its prompt resource has the same name for the bundled agent)")
    .option("--json", "print machine-readable JSON")
    .action(async (agentId: string, options: { json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const agent = config.agents.get(agentId);
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
    .option("--version <n>", "version number (default: the one labelled production)", versionOption("--version"))
    .option("--label <label>", "the version a label points at", PRODUCTION)
    .option("--json", "print machine-readable JSON")
    .action(async (agentId: string, options: { version?: number; label: string; json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const agent = config.agents.get(agentId);
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

  withChangeOptions(
    prompts
      .command("rollback")
      .description("move production back to an earlier version (a store operation: works without Temporal)")
      .argument("<agent>", "agent id")
      .requiredOption("--to <n>", "the earlier version", versionOption("--to"))
      .option("--label <label>", "the label to move back", PRODUCTION),
  ).action(async (agentId: string, options: ChangeOptions & { to: number; label: string }, command: Command) => {
    const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
    const agent = config.agents.get(agentId);
    await withRuntime(config, { store: true, command: "agl prompts rollback" }, async (runtime) => {
      printMove(await runtime.store.resources.rollback({ name: agent.prompt.resource, label: options.label, toVersion: options.to, ...changeDetails(options) }), options.json);
    });
  });

  withChangeOptions(
    prompts
      .command("promote")
      .description("point a label (created if new) at a version")
      .argument("<agent>", "agent id")
      .requiredOption("--version <n>", "the version the label will point at", versionOption("--version"))
      .requiredOption("--label <label>", "the label to move, e.g. production or candidate"),
  ).action(async (agentId: string, options: ChangeOptions & { version: number; label: string }, command: Command) => {
    const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
    const agent = config.agents.get(agentId);
    checkLabelName(options.label);
    await withRuntime(config, { store: true, command: "agl prompts promote" }, async (runtime) => {
      printMove(await runtime.store.resources.moveLabel({ name: agent.prompt.resource, label: options.label, toVersion: options.version, ...changeDetails(options) }), options.json);
    });
  });

  prompts
    .command("diff")
    .description("a line diff of each component between two versions")
    .argument("<agent>", "agent id")
    .argument("<from>", "older version", versionOption("<from>"))
    .argument("<to>", "newer version", versionOption("<to>"))
    .option("--json", "print machine-readable JSON")
    .action(async (agentId: string, from: number, to: number, options: { json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const agent = config.agents.get(agentId);
      await withRuntime(config, { store: true, command: "agl prompts diff" }, async (runtime) => {
        const resources = runtime.store.resources;
        const [before, after] = [await resources.getVersion(agent.prompt.resource, from), await resources.getVersion(agent.prompt.resource, to)];
        const components = diffPromptContent(before.content, after.content);
        if (options.json) return printJson({ name: agent.prompt.resource, from, to, components });
        console.log(`--- ${agent.prompt.resource} v${from}\n+++ ${agent.prompt.resource} v${to}`);
        for (const component of components) {
          console.log(`\n── ${component.component} (${component.change}) ${"─".repeat(Math.max(0, 56 - component.component.length - component.change.length))}`);
          if (component.unified) console.log(component.unified);
        }
      });
    });

  prompts
    .command("history")
    .description("the audit trail: every publish, label move and rollback, newest first")
    .argument("<agent>", "agent id")
    .option("--limit <n>", "how many events", versionOption("--limit"), 200)
    .option("--json", "print machine-readable JSON")
    .action(async (agentId: string, options: { limit: number; json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const agent = config.agents.get(agentId);
      await withRuntime(config, { store: true, command: "agl prompts history" }, async (runtime) => {
        const events = await runtime.store.resources.events(agent.prompt.resource, options.limit);
        if (options.json) return printJson(events.map(eventJson));
        const versionText = (version: number | null) => (version === null ? "" : `v${version}`);
        console.log(
          table(
            ["TIME", "EVENT", "LABEL", "FROM", "TO", "ACTOR", "REASON"],
            events.map((e) => [formatTime(e.createdAt), e.kind, e.label ?? "", versionText(e.fromVersion), versionText(e.toVersion), e.actor, truncate(e.reason ?? "", 60)]),
          ),
        );
      });
    });

  prompts
    .command("publish")
    .description("publish a new version from a JSON file {engine, components}, checked against the agent first")
    .argument("<agent>", "agent id")
    .requiredOption("--file <file>", 'JSON file: {"engine": "placeholders", "components": {"instructions": "...", ...}}')
    .option("--label <label>", "also point this label at the new version (compare-and-set on where it points now)")
    .option("--parent <n>", "the version it was derived from (default: the one labelled production)", versionOption("--parent"))
    .option("--note <text>", "a note shown in prompts list")
    .option("--reason <text>", "why, for the audit trail")
    .option("--actor <who>", "who, for the audit trail (default: user:<your OS user>)")
    .option("--json", "print machine-readable JSON")
    .action(async (agentId: string, options: { file: string; label?: string; parent?: number; note?: string; reason?: string; actor?: string; json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const agent = config.agents.get(agentId);
      if (options.label) checkLabelName(options.label);
      // Checked before the store is opened: invalid content writes nothing.
      const content = validatePromptContent(agent, await readJsonFile(options.file));
      await withRuntime(config, { store: true, command: "agl prompts publish" }, async (runtime) => {
        const resources = runtime.store.resources;
        const labelVersion = async (label: string) => (await resources.findByLabel(agent.prompt.resource, label))?.version ?? null;
        const parentVersion = options.parent ?? (await labelVersion(PRODUCTION));
        if (parentVersion !== null) await resources.getVersion(agent.prompt.resource, parentVersion);
        const published = await resources.publish({
          name: agent.prompt.resource,
          content,
          parentVersion,
          createdBy: options.actor ?? currentUser(),
          ...(options.note ? { note: options.note } : {}),
          ...(options.reason ? { reason: options.reason } : {}),
          ...(options.label ? { labels: [{ label: options.label, expectedVersion: await labelVersion(options.label) }] } : {}),
        });
        if (options.json) return printJson(versionJson(published));
        console.log(`${published.name} v${published.version} published${published.labels.length ? ` [${published.labels.join(", ")}]` : ""}${parentVersion ? `, from v${parentVersion}` : ""}.`);
      });
    });
}

/** The options every label move takes: who, why, and the compare-and-set. */
function withChangeOptions(command: Command): Command {
  return command
    .option("--reason <text>", "why, for the audit trail")
    .option("--actor <who>", "who, for the audit trail (default: user:<your OS user>)")
    .option("--expected-version <n>", "fail unless the label points at this version now (compare-and-set)", (value) => positiveInteger(value, "--expected-version"))
    .option("--json", "print machine-readable JSON");
}

function changeDetails(options: ChangeOptions) {
  return {
    actor: options.actor ?? currentUser(),
    ...(options.reason ? { reason: options.reason } : {}),
    ...(options.expectedVersion !== undefined ? { expectedVersion: options.expectedVersion } : {}),
  };
}

function printMove(moved: LabelMoved, json: boolean | undefined): void {
  const { event } = moved;
  if (json) return printJson(eventJson(event));
  const from = event.fromVersion === null ? "(new label)" : `v${event.fromVersion}`;
  const what = event.kind === "rolled_back" ? "rolled back" : "moved";
  console.log(`${event.name}: ${event.label} ${what} ${from} -> v${event.toVersion} by ${event.actor}${event.reason ? ` (${event.reason})` : ""}.`);
}

function checkLabelName(label: string): void {
  if (!LABEL_PATTERN.test(label)) throw new InvalidInputError(`--label "${label}" must be ${LABEL_RULE}.`);
}

/** Who changed a label, when --actor does not say: the OS user running the command. */
export function currentUser(): string {
  try {
    return `user:${userInfo().username}`;
  } catch {
    return `user:${process.env.USER ?? "unknown"}`;
  }
}

async function readJsonFile(file: string): Promise<unknown> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new InvalidInputError(`Cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidInputError(`${path} is not valid JSON: ${(error as Error).message}.`);
  }
}

function validationScore(version: ResourceVersion): string {
  const validation = version.metrics.validation as { meanReward?: number } | undefined;
  return typeof validation?.meanReward === "number" ? validation.meanReward.toFixed(3) : "";
}

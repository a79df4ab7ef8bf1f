import type { Command } from "commander";
import { endCanary, parseWeight, startCanary } from "../runtime/canaries.ts";
import { type Canary, canaryJson } from "../store/canaries.ts";
import { NotFoundError } from "../store/errors.ts";
import { eventJson, PRODUCTION } from "../store/resources.ts";
import type { WebhookDelivery } from "../store/webhooks.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";
import { positiveInteger } from "./cycle-commands.ts";
import { formatTime, printJson, table, truncate } from "./output.ts";
import { currentUser } from "./prompts-commands.ts";

interface WhoOptions {
  reason?: string;
  actor?: string;
  json?: boolean;
}

/** `agl deploy`, `agl canary status|promote|abort` and `agl webhooks deliveries`. */
export function registerCanaryCommands(program: Command): void {
  program
    .command("deploy")
    .description("move production to a version, or with --canary put it on the canary label for a share of keyed traffic under a guard")
    .requiredOption("--agent <agent>", "agent id")
    .requiredOption("--version <n>", "the version to deploy", (value) => positiveInteger(value, "--version"))
    .option("--canary <percent>", "serve the version to this share of keyed traffic (e.g. 10%) and let the guard promote or roll it back")
    .option("--reason <text>", "why, for the audit trail")
    .option("--actor <who>", "who, for the audit trail (default: user:<your OS user>)")
    .option("--json", "print machine-readable JSON")
    .action(async (options: WhoOptions & { agent: string; version: number; canary?: string }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const agent = config.agents.get(options.agent);
      const actor = options.actor ?? currentUser();
      if (options.canary === undefined) {
        await withRuntime(config, { store: true, command: "agl deploy" }, async (runtime) => {
          const production = await runtime.store.resources.getByLabel(agent.prompt.resource, PRODUCTION);
          const moved = await runtime.store.resources.moveLabel({ name: agent.prompt.resource, label: PRODUCTION, toVersion: options.version, expectedVersion: production.version, actor, ...(options.reason ? { reason: options.reason } : {}) });
          if (options.json) return printJson(eventJson(moved.event));
          console.log(`${agent.prompt.resource}: production ${moved.event.kind === "rolled_back" ? "rolled back" : "moved"} v${production.version} -> v${options.version} by ${actor}.`);
        });
        return;
      }
      // Checked before anything is opened: a bad weight writes nothing.
      const weight = parseWeight(options.canary);
      await withRuntime(config, { store: true, temporal: true, command: "agl deploy" }, async (runtime) => {
        const { canary } = await startCanary({ config, store: runtime.store, client: runtime.temporal.client, agent: agent.id, version: options.version, weight, actor, ...(options.reason ? { reason: options.reason } : {}) });
        if (options.json) return printJson(canaryJson(canary));
        console.log(`Canary ${canary.id}: ${agent.prompt.resource} v${canary.canaryVersion} serves ${canary.weight}% of keyed traffic; production stays v${canary.baselineVersion} until the guard decides.`);
        console.log(`Follow it with: agl canary status ${agent.id}`);
        if (runtime.ownsEmbedded) process.stderr.write("The guard runs when a worker does (agl up or agl worker on this data folder).\n");
      });
    });

  const canary = program.command("canary").description("the running canary of an agent and its guard");
  canary
    .command("status")
    .description("the running (else the latest) canary: both arms with their intervals, and the guard's last look")
    .argument("<agent>", "agent id")
    .option("--json", "print machine-readable JSON")
    .action(async (agentId: string, options: { json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const agent = config.agents.get(agentId);
      await withRuntime(config, { store: true, command: "agl canary status" }, async (runtime) => {
        const [latest] = await runtime.store.canaries.list(agent.id, 1);
        if (!latest) throw new NotFoundError(`Agent "${agent.id}" has had no canary (start one with agl deploy --agent ${agent.id} --version N --canary 10%).`);
        if (options.json) return printJson(canaryJson(latest));
        printCanary(latest);
      });
    });

  for (const [name, outcome, description] of [
    ["promote", "promoted", "move production to the running canary now, instead of waiting for the guard"],
    ["abort", "rolled_back", "remove the canary label now (production stays), instead of waiting for the guard"],
  ] as const) {
    canary
      .command(name)
      .description(description)
      .argument("<agent>", "agent id")
      .option("--reason <text>", "why, for the audit trail")
      .option("--actor <who>", "who, for the audit trail (default: user:<your OS user>)")
      .option("--json", "print machine-readable JSON")
      .action(async (agentId: string, options: WhoOptions, command: Command) => {
        const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
        await withRuntime(config, { store: true, command: `agl canary ${name}` }, async (runtime) => {
          const actor = options.actor ?? currentUser();
          const ended = await endCanary({ store: runtime.store, config, agent: agentId, outcome, actor, ...(options.reason ? { reason: options.reason } : {}) });
          if (options.json) return printJson({ canary: canaryJson(ended.canary), event: ended.event && eventJson(ended.event) });
          const { canary: done } = ended;
          console.log(
            outcome === "promoted"
              ? `Canary ${done.id} promoted by ${actor}: production v${done.baselineVersion} -> v${done.canaryVersion}; its guard ends.`
              : `Canary ${done.id} aborted by ${actor}: the canary label is gone, production stays v${done.baselineVersion}; its guard ends.`,
          );
        });
      });
  }

  program
    .command("webhooks")
    .description("signed change events sent to the configured receivers")
    .command("deliveries")
    .description("each event's delivery to each receiver: attempts, last answer, next try")
    .option("--limit <n>", "how many, newest first", (value) => positiveInteger(value, "--limit"), 50)
    .option("--event <id>", "only this audit event (evt_<n> or n)")
    .option("--json", "print machine-readable JSON")
    .action(async (options: { limit: number; event?: string; json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const eventId = options.event === undefined ? undefined : positiveInteger(options.event.replace(/^evt_/, ""), "--event");
      await withRuntime(config, { store: true, command: "agl webhooks deliveries" }, async (runtime) => {
        const deliveries = await runtime.store.webhooks.deliveries({ limit: options.limit, ...(eventId !== undefined ? { eventId } : {}) });
        if (options.json) return printJson(deliveries.map(deliveryJson));
        if (deliveries.length === 0) return console.log(config.webhooks.length === 0 ? "No webhooks are configured (webhooks in agl.config.json)." : "No deliveries yet.");
        console.log(
          table(
            ["EVENT", "KIND", "RECEIVER", "STATUS", "ATTEMPTS", "LAST", "NEXT TRY", "ERROR"],
            deliveries.map((d) => [`evt_${d.eventId}`, d.kind, truncate(d.url, 40), d.status, d.attempts, d.lastStatus ?? "", formatTime(d.nextAttemptAt), truncate(d.lastError ?? "", 50)]),
          ),
        );
      });
    });
}

/** The documented JSON form of a delivery (`agl webhooks deliveries --json`). */
export function deliveryJson(delivery: WebhookDelivery) {
  return {
    eventId: `evt_${delivery.eventId}`,
    kind: delivery.kind,
    url: delivery.url,
    status: delivery.status,
    attempts: delivery.attempts,
    lastStatus: delivery.lastStatus,
    lastError: delivery.lastError,
    nextAttemptAt: delivery.nextAttemptAt?.toISOString() ?? null,
    deliveredAt: delivery.deliveredAt?.toISOString() ?? null,
    createdAt: delivery.createdAt.toISOString(),
  };
}

function printCanary(canary: Canary): void {
  const state = canary.state as {
    look?: number;
    decision?: string;
    reason?: string;
    arms?: Record<string, { version: number; rollouts: number; rewarded: number; reward: { mean: number; low: number | null; high: number | null }; failureRate: number; p90LatencyMs: number | null }>;
  };
  console.log(`Canary ${canary.id} of ${canary.agent}: ${canary.status}, v${canary.canaryVersion} at ${canary.weight}% of keyed traffic against production v${canary.baselineVersion}, started ${formatTime(canary.startedAt)} by ${canary.startedBy}`);
  if (canary.status !== "running") console.log(`${canary.status === "promoted" ? "Promoted" : "Rolled back"} ${formatTime(canary.decidedAt)} by ${canary.decidedBy}: ${canary.decisionReason}`);
  if (!state.arms) return console.log("The guard has not looked yet.");
  const interval = (reward: { mean: number; low: number | null; high: number | null }) =>
    reward.low === null || reward.high === null ? reward.mean.toFixed(3) : `${reward.mean.toFixed(3)} [${reward.low.toFixed(3)}, ${reward.high.toFixed(3)}]`;
  console.log(
    table(
      ["ARM", "VERSION", "ROLLOUTS", "REWARDED", "REWARD [95%]", "FAILED", "P90"],
      Object.entries(state.arms).map(([arm, a]) => [arm, `v${a.version}`, a.rollouts, a.rewarded, interval(a.reward), `${(a.failureRate * 100).toFixed(1)}%`, a.p90LatencyMs === null ? "" : `${Math.round(a.p90LatencyMs)} ms`]),
    ),
  );
  console.log(`Guard, look ${state.look}: ${state.decision}. ${state.reason}`);
}

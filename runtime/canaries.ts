import { randomBytes } from "node:crypto";
import type { Client } from "@temporalio/client";
import type { LoadedConfig } from "../config/load.ts";
import { type Canary, type CanaryOutcome, checkWeight, type GuardSettings } from "../store/canaries.ts";
import { InvalidInputError, NotFoundError } from "../store/errors.ts";
import type { Store } from "../store/index.ts";
import type { canaryGuard } from "../workflows/canary-guard.ts";
import type { CanaryGuardInput } from "../workflows/types.ts";
import { parseDuration } from "./schedules.ts";

/** The configured guard (`guard.*`), as the workflow and the store keep it. */
export function guardSettings(config: Pick<LoadedConfig, "guard">): GuardSettings {
  const guard = config.guard;
  return {
    minRollouts: guard.minRollouts,
    lookEvery: guard.lookEvery,
    alpha: guard.alpha,
    maxDurationMs: parseDuration(guard.maxDuration, "guard.maxDuration"),
    judgeSampleRate: guard.judgeSampleRate,
    latencyTolerance: guard.latencyTolerance,
    heartbeatTimeoutSeconds: guard.heartbeatTimeoutSeconds,
  };
}

/** Canary ids are the guard's workflow id: readable in a log line, the audit trail (`guard:<id>`) and the Temporal UI. */
export function newCanaryId(agent: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `can-${agent}-${stamp}-${randomBytes(2).toString("hex")}`;
}

/** `10%`, `10` or `2.5%` as a number of percent; anything else is refused before anything is written. */
export function parseWeight(text: string): number {
  const trimmed = text.trim().replace(/%$/, "");
  const weight = /^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (Number.isNaN(weight)) throw new InvalidInputError(`--canary "${text}" is not a percentage: use e.g. 10% or 2.5%. Nothing was changed.`);
  checkWeight(weight);
  return weight;
}

export interface StartCanaryOptions {
  config: LoadedConfig;
  store: Store;
  client: Client;
  agent: string;
  version: number;
  weight: number;
  actor: string;
  reason?: string;
}

/**
 * Puts `version` on the agent's `canary` label (one store transaction, every check in it: the weight,
 * the version, production, no other canary) and starts its guard. If the guard cannot be started the
 * canary is withdrawn again, so no canary is ever left unguarded.
 */
export async function startCanary(options: StartCanaryOptions): Promise<{ canary: Canary; workflowId: string }> {
  const agent = options.config.agents.get(options.agent);
  const settings = guardSettings(options.config);
  const id = newCanaryId(agent.id);
  const { canary } = await options.store.canaries.start({
    id,
    agent: agent.id,
    resource: agent.prompt.resource,
    version: options.version,
    weight: options.weight,
    actor: options.actor,
    settings,
    ...(options.reason ? { reason: options.reason } : {}),
  });
  try {
    await options.client.workflow.start<typeof canaryGuard>("canaryGuard", {
      taskQueue: options.config.temporal.taskQueue,
      workflowId: id,
      args: [{ canaryId: id, settings } satisfies CanaryGuardInput],
    });
  } catch (error) {
    await options.store.canaries.conclude({ id, outcome: "rolled_back", actor: options.actor, reason: `its guard could not be started (${(error as Error).message}), so the canary was withdrawn` });
    throw new Error(`The guard of canary ${id} could not be started: ${(error as Error).message}. The canary was withdrawn; production is unchanged.`);
  }
  return { canary, workflowId: id };
}

/** A person steps in: promotes or rolls back the agent's running canary, the same store operation as the guard's. */
export async function endCanary(options: { store: Store; config: LoadedConfig; agent: string; outcome: CanaryOutcome; actor: string; reason?: string }) {
  const agent = options.config.agents.get(options.agent);
  const running = await options.store.canaries.running(agent.prompt.resource);
  if (!running) throw new NotFoundError(`Agent "${agent.id}" has no running canary (start one with agl deploy --agent ${agent.id} --version N --canary 10%).`);
  const what = options.outcome === "promoted" ? "promoted" : "aborted";
  return options.store.canaries.conclude({ id: running.id, outcome: options.outcome, actor: options.actor, reason: options.reason ?? `${what} by ${options.actor}` });
}

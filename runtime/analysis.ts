import { scoringPlan } from "../scorers/registry.ts";
import type { LoadedConfig } from "../config/load.ts";
import type { Analysis } from "../store/analysis.ts";
import { InvalidInputError } from "../store/errors.ts";
import type { Store } from "../store/index.ts";
import { parseDuration } from "./schedules.ts";

/** `--since` and `?since=`: a time (ISO 8601: 2026-11-25, 2026-11-25T08:00:00Z) or a duration back from now (90m, 24h, 7d). */
export function parseSince(text: string, what: string, now = new Date()): Date {
  const trimmed = text.trim();
  if (/^\d+(ms|s|m|h|d)/.test(trimmed)) return new Date(now.getTime() - parseDuration(trimmed, what));
  const time = /^\d{4}-\d{2}-\d{2}/.test(trimmed) ? new Date(trimmed) : new Date(Number.NaN);
  if (Number.isNaN(time.getTime())) throw new InvalidInputError(`${what} "${text}" is neither a time (2026-11-25, 2026-11-25T08:00:00Z) nor a duration back from now (90m, 24h, 7d).`);
  return time;
}

/**
 * `agl analyze` and `GET /v1/analysis/:agent`: the agent's rollouts per prompt version, rewards averaged
 * over the agent's scorers with their weights (or `cycle.scorers`). An agent that is not registered here but sent traces
 * (OTLP) is analysed too, without a label order; a name nobody knows is NotFoundError.
 */
export async function analyzeAgent(store: Store, config: Pick<LoadedConfig, "cycle" | "agents">, agentId: string, since?: Date): Promise<Analysis> {
  const agent = config.agents.find(agentId);
  // An agent only seen in traces has no scorers of its own: the configured ones, else ground truth, count for it.
  const weights = agent ? scoringPlan(agent, config.cycle.scorers).weights : Object.fromEntries((config.cycle.scorers ?? ["ground-truth"]).map((id) => [id, 1]));
  const analysis = await store.analysis.analyze({ agent: agentId, weights, labels: agent?.labels ?? {}, ...(since ? { since } : {}) });
  // Nothing stored and not registered: get throws the NotFoundError that lists the known agents.
  if (!agent && analysis.versions.length === 0) config.agents.get(agentId);
  return analysis;
}

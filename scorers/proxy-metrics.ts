import { randomUUID } from "node:crypto";
import { z } from "zod";
import { InvalidInputError, NotFoundError } from "../store/errors.ts";
import type { Store } from "../store/index.ts";
import type { Reward } from "../store/rollouts.ts";

export const PROXY = "proxy";

/** Something that happened after a rollout (the user engaged, the pipeline succeeded), as `POST /v1/outcomes` takes it. */
export const outcomeSchema = z
  .object({
    rolloutId: z.string().trim().min(1).max(200).optional(),
    /** OTLP rollouts carry their trace id: every rollout of the trace gets the reward. */
    traceId: z.string().trim().min(1).max(200).optional(),
    event: z.string().min(1).max(64),
    /** A measurement that came with the event (seconds engaged, items bought); recorded with the reward. */
    value: z.number().finite().optional(),
    occurredAt: z.iso.datetime({ offset: true, error: "must be an ISO 8601 time, e.g. 2026-11-25T12:00:00Z" }).optional(),
    /** Makes a resend land once; without it every post is a new reward. */
    outcomeId: z.string().trim().min(1).max(200).optional(),
  })
  .strict()
  .refine((outcome) => (outcome.rolloutId === undefined) !== (outcome.traceId === undefined), { message: "give exactly one of rolloutId and traceId", path: ["rolloutId"] });

export type Outcome = z.infer<typeof outcomeSchema>;

/**
 * Stores the outcome as a `proxy:<event>` reward, of the value `rewards.proxy` maps the event to, on
 * its rollout or on every rollout of its trace. Idempotent per (rollout, event, outcomeId). An event
 * the mapping does not know is InvalidInputError; a rollout or trace nobody stored is NotFoundError.
 */
export async function recordOutcome(store: Store, mapping: Record<string, number>, outcome: Outcome): Promise<{ rewards: Reward[]; created: number }> {
  if (!Object.hasOwn(mapping, outcome.event)) {
    const known = Object.keys(mapping);
    throw new InvalidInputError(
      `Unknown event "${outcome.event}": ${known.length > 0 ? `configured events are ${known.join(", ")}` : "no events are configured"} (rewards.proxy in agl.config.json maps event names to rewards in [-1, 1]). Nothing was stored.`,
    );
  }
  const value = mapping[outcome.event]!;
  const rolloutIds = outcome.rolloutId ? [(await store.rollouts.get(outcome.rolloutId)).id] : await store.rollouts.idsWithTrace(outcome.traceId!);
  if (rolloutIds.length === 0) throw new NotFoundError(`No rollout has trace id "${outcome.traceId}" (yet: post the trace to /v1/traces first). Nothing was stored.`);
  const dedupeKey = outcome.outcomeId ?? `oc-${randomUUID()}`;
  const measured = outcome.value !== undefined ? ` (value ${outcome.value})` : "";
  const when = outcome.occurredAt ? ` at ${new Date(outcome.occurredAt).toISOString()}` : "";
  const rewards = rolloutIds.map((rolloutId) => ({
    rolloutId,
    scorer: `${PROXY}:${outcome.event}`,
    value,
    reason: `outcome "${outcome.event}"${measured}${when}: reward ${value} by rewards.proxy`,
    details: {
      event: outcome.event,
      ...(outcome.value !== undefined ? { value: outcome.value } : {}),
      ...(outcome.occurredAt ? { occurredAt: new Date(outcome.occurredAt).toISOString() } : {}),
      ...(outcome.traceId ? { traceId: outcome.traceId } : {}),
    },
    dedupeKey,
  }));
  const created = await store.rollouts.addRewards(rewards);
  const stored = await Promise.all(rewards.map(async (reward) => (await store.rollouts.getReward(reward.rolloutId, reward.scorer, dedupeKey))!));
  return { rewards: stored, created };
}

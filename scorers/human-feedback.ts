import { randomUUID } from "node:crypto";
import { z } from "zod";
import { ConflictError } from "../store/errors.ts";
import type { Store } from "../store/index.ts";
import type { Reward } from "../store/rollouts.ts";

export const HUMAN = "human";

/** One person's verdict on one rollout: a rating 1-5 or a thumb, as `POST /v1/feedback` and `agl feedback` take it. */
export const feedbackSchema = z
  .object({
    rolloutId: z.string().trim().min(1).max(200),
    rating: z.number({ error: "must be a whole number from 1 to 5" }).int("must be a whole number from 1 to 5").min(1, "must be at least 1").max(5, "must be at most 5").optional(),
    thumbs: z.enum(["up", "down"], { error: 'must be "up" or "down"' }).optional(),
    comment: z.string().max(2_000).optional(),
    user: z.string().trim().min(1).max(200).optional(),
    /** Makes a resend land once; without it every post is a new reward. */
    feedbackId: z.string().trim().min(1).max(200).optional(),
  })
  .strict()
  .refine((feedback) => (feedback.rating === undefined) !== (feedback.thumbs === undefined), { message: "give exactly one of rating (1-5) and thumbs (up|down)", path: ["rating"] });

export type Feedback = z.infer<typeof feedbackSchema>;

/** rating 1..5 -> (rating - 3) / 2, so 1 = -1, 3 = 0, 5 = +1; thumbs up +1, down -1. */
export function feedbackReward(feedback: Feedback, dedupeKey: string): Omit<Reward, "createdAt"> {
  const value = feedback.rating !== undefined ? (feedback.rating - 3) / 2 : feedback.thumbs === "up" ? 1 : -1;
  const verdict = feedback.rating !== undefined ? `rated ${feedback.rating}/5` : `thumbs ${feedback.thumbs}`;
  const comment = feedback.comment?.trim() ? `: "${feedback.comment.trim()}"` : "";
  return {
    rolloutId: feedback.rolloutId,
    scorer: HUMAN,
    value,
    reason: `${verdict}${feedback.user ? ` by ${feedback.user}` : ""}${comment}`,
    details: {
      ...(feedback.rating !== undefined ? { rating: feedback.rating } : { thumbs: feedback.thumbs }),
      ...(feedback.comment !== undefined ? { comment: feedback.comment } : {}),
      ...(feedback.user !== undefined ? { user: feedback.user } : {}),
    },
    dedupeKey,
  };
}

/**
 * Stores the feedback as a `human` reward of its rollout (NotFoundError if there is none). Sent again
 * with the same feedbackId it changes nothing (created: false); the same id with another verdict is a
 * ConflictError, because an id names one verdict.
 */
export async function recordFeedback(store: Store, feedback: Feedback): Promise<{ reward: Reward; created: boolean }> {
  await store.rollouts.get(feedback.rolloutId);
  const reward = feedbackReward(feedback, feedback.feedbackId ?? `fb-${randomUUID()}`);
  const created = (await store.rollouts.addRewards([reward])) === 1;
  const stored = (await store.rollouts.getReward(reward.rolloutId, reward.scorer, reward.dedupeKey))!;
  if (!created && (stored.value !== reward.value || stored.reason !== reward.reason)) {
    throw new ConflictError(`Feedback ${reward.dedupeKey} on rollout ${reward.rolloutId} was already recorded as "${stored.reason}"; send a new feedbackId for a new verdict. Nothing was changed.`);
  }
  return { reward: stored, created };
}

import { feedbackSchema, recordFeedback } from "../../scorers/human-feedback.ts";
import { outcomeSchema, recordOutcome } from "../../scorers/proxy-metrics.ts";
import { rewardJson } from "../../store/rollouts.ts";
import type { RouteModule } from "../app.ts";
import { jsonBodyLimit, readJson } from "../http-errors.ts";

/** One rating or one outcome event is a few hundred bytes; a comment of 2,000 characters fits many times over. */
export const REWARD_BODY_LIMIT_BYTES = 16 * 1024;

/**
 * Rewards posted after the fact (README: "Rewards"): `POST /v1/feedback`, a person's rating 1-5 or thumb
 * for a rollout -> reward (rating - 3) / 2, scorer "human"; `POST /v1/outcomes`, a named outcome event for
 * a rollout or a trace -> the reward `rewards.proxy` maps it to, scorer "proxy:<event>". Both are
 * idempotent on the id the client sends (feedbackId, outcomeId): 201 when stored, 200 when it was already.
 */
export const feedbackRoutes: RouteModule = (app, { config, store }) => {
  const limitBody = jsonBodyLimit(REWARD_BODY_LIMIT_BYTES, " Nothing was written.");

  app.post("/v1/feedback", limitBody, async (context) => {
    const { reward, created } = await recordFeedback(store, await readJson(context, feedbackSchema));
    return context.json({ created, reward: rewardJson(reward) }, created ? 201 : 200);
  });

  app.post("/v1/outcomes", limitBody, async (context) => {
    const { rewards, created } = await recordOutcome(store, config.rewards.proxy, await readJson(context, outcomeSchema));
    return context.json({ created, rewards: rewards.map(rewardJson) }, created > 0 ? 201 : 200);
  });
};

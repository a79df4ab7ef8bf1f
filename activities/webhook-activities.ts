import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import type { LoadedConfig } from "../config/load.ts";
import { postWebhook } from "../server/webhooks.ts";
import type { Store } from "../store/index.ts";
import { rethrowNonRetryable } from "./cycle-activities.ts";

/** A receiver slower than this counts as a failed attempt. */
const REQUEST_TIMEOUT_MS = 10_000;

export function createWebhookActivities(deps: { store: Store; config: Pick<LoadedConfig, "webhooks"> }) {
  /** One attempt: signs the event now, POSTs it, records the attempt; anything but a 2xx fails the attempt, which Temporal retries. */
  async function sendWebhook(input: { eventId: number; url: string; maxAttempts: number; initialIntervalMs: number; maxIntervalMs: number }): Promise<{ delivered: boolean; attempts: number }> {
    const { attempt } = Context.current().info;
    const target = deps.config.webhooks.find((webhook) => webhook.url === input.url);
    if (!target) {
      throw ApplicationFailure.nonRetryable(`${input.url} is no longer configured as a webhook (webhooks in the configuration); the event is not delivered.`, "UnknownWebhook");
    }
    const event = await deps.store.webhooks.event(input.eventId).catch(rethrowNonRetryable);
    let status: number | null = null;
    let error: string | null = null;
    try {
      status = await postWebhook(target.url, target.secret, event, REQUEST_TIMEOUT_MS);
      if (status < 200 || status > 299) error = `answered ${status}`;
    } catch (failure) {
      const cause = (failure as { cause?: { code?: string } }).cause?.code;
      error = `cannot be reached (${cause ?? (failure as Error).message})`;
    }
    const more = attempt < input.maxAttempts;
    const nextDelay = Math.min(input.initialIntervalMs * 2 ** (attempt - 1), input.maxIntervalMs);
    await deps.store.webhooks.recordAttempt({
      eventId: input.eventId,
      url: input.url,
      attempt,
      status,
      error,
      delivered: error === null,
      nextAttemptAt: error !== null && more ? new Date(Date.now() + nextDelay) : null,
    });
    if (error !== null) throw ApplicationFailure.retryable(`${input.url} ${error} (attempt ${attempt} of ${input.maxAttempts})`, "WebhookAttemptFailed");
    return { delivered: true, attempts: attempt };
  }

  async function markWebhookFailed(input: { eventId: number; url: string; error: string }): Promise<void> {
    await deps.store.webhooks.markFailed(input.eventId, input.url, input.error);
  }

  return { sendWebhook, markWebhookFailed };
}

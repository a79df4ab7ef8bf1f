import { ActivityFailure, ApplicationFailure, proxyActivities } from "@temporalio/workflow";
import type { createWebhookActivities } from "../activities/webhook-activities.ts";

type Activities = ReturnType<typeof createWebhookActivities>;

export interface WebhookDeliveryInput {
  eventId: number;
  url: string;
  /** From the receiver's configuration; the secret stays out of workflow history, the activity reads it from the configuration. */
  retry: { maxAttempts: number; initialIntervalMs: number; maxIntervalMs: number };
}

/**
 * One event to one receiver: attempts with exponential backoff (Temporal's retry policy) until the
 * receiver answers 2xx or the attempts run out, each attempt recorded in `webhook_deliveries`. The
 * workflow id is (event, receiver) and may not be reused, so an event is never delivered by two workflows.
 */
export async function deliverWebhook(input: WebhookDeliveryInput): Promise<{ delivered: boolean; attempts: number }> {
  const { sendWebhook } = proxyActivities<Activities>({
    startToCloseTimeout: "1 minute",
    retry: { initialInterval: input.retry.initialIntervalMs, backoffCoefficient: 2, maximumInterval: input.retry.maxIntervalMs, maximumAttempts: input.retry.maxAttempts },
  });
  const { markWebhookFailed } = proxyActivities<Activities>({ startToCloseTimeout: "1 minute", retry: { initialInterval: "1 second", maximumInterval: "1 minute" } });
  try {
    return await sendWebhook({ eventId: input.eventId, url: input.url, maxAttempts: input.retry.maxAttempts, initialIntervalMs: input.retry.initialIntervalMs, maxIntervalMs: input.retry.maxIntervalMs });
  } catch (error) {
    const cause = error instanceof ActivityFailure ? error.cause : error;
    const message = cause instanceof ApplicationFailure || cause instanceof Error ? cause.message : String(cause);
    await markWebhookFailed({ eventId: input.eventId, url: input.url, error: message });
    return { delivered: false, attempts: input.retry.maxAttempts };
  }
}

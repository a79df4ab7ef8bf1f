import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { type Client, WorkflowExecutionAlreadyStartedError } from "@temporalio/client";
import type { LoadedConfig } from "../config/load.ts";
import { webhookEventKind } from "../server/webhooks.ts";
import type { Store } from "../store/index.ts";
import type { deliverWebhook, WebhookDeliveryInput } from "../workflows/webhook-delivery.ts";

/** Between sweeps of the outbox when nothing woke the dispatcher: changes made by other processes are found this late at most. */
const SWEEP_EVERY_MS = 1_000;
const BATCH = 100;

/** The delivery workflow of (event, receiver): one id, never reused. */
export function deliveryWorkflowId(eventId: number, url: string): string {
  return `webhook-${eventId}-${createHash("sha256").update(url).digest("hex").slice(0, 12)}`;
}

/**
 * Hands every audit event in the outbox to the configured receivers that subscribe to its kind: records a
 * delivery per receiver, starts its `deliverWebhook` workflow, then takes the event out of the outbox. A
 * crash in between repeats only what is idempotent (the delivery rows, the workflow start by its id),
 * so every event reaches every receiver's workflow once. Runs in every worker; they may race safely.
 */
export function startWebhookDispatcher(options: { config: LoadedConfig; store: Store; client: Client }): { stop(): Promise<void> } {
  const { config, store, client } = options;
  const stopping = new AbortController();
  let wake: (() => void) | undefined;
  const unsubscribe = store.resourceChanges.subscribe(() => wake?.());

  async function dispatchOnce(): Promise<number> {
    const events = await store.webhooks.pendingEvents(BATCH);
    for (const event of events) {
      const kind = webhookEventKind(event.kind);
      const targets = config.webhooks.filter((webhook) => webhook.events.includes(kind));
      await store.webhooks.addDeliveries(event.id, targets.map((target) => ({ url: target.url, kind })));
      for (const target of targets) {
        const input: WebhookDeliveryInput = {
          eventId: event.id,
          url: target.url,
          retry: { maxAttempts: target.maxAttempts, initialIntervalMs: Math.round(target.retryInitialSeconds * 1000), maxIntervalMs: Math.round(target.retryMaxSeconds * 1000) },
        };
        await client.workflow
          .start<typeof deliverWebhook>("deliverWebhook", { taskQueue: config.temporal.taskQueue, workflowId: deliveryWorkflowId(event.id, target.url), workflowIdReusePolicy: "REJECT_DUPLICATE", args: [input] })
          .catch((error: unknown) => {
            if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
          });
      }
      await store.webhooks.clearOutbox(event.id);
    }
    return events.length;
  }

  const loop = (async () => {
    let reported = false;
    while (!stopping.signal.aborted) {
      let full = false;
      try {
        full = (await dispatchOnce()) === BATCH;
        reported = false;
      } catch (error) {
        // The store or Temporal is away: the outbox keeps the events until they are back.
        if (!reported) process.stderr.write(`agl webhooks: dispatching paused (${(error as Error).message}); retrying\n`);
        reported = true;
      }
      if (full) continue;
      await new Promise<void>((resolve) => {
        wake = resolve;
        void sleep(SWEEP_EVERY_MS, undefined, { signal: stopping.signal, ref: false }).then(resolve, resolve);
      });
      wake = undefined;
    }
  })();

  return {
    async stop() {
      unsubscribe();
      stopping.abort();
      wake?.();
      await loop;
    },
  };
}

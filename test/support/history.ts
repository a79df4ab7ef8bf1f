import { setTimeout as sleep } from "node:timers/promises";
import type { WorkflowHandle } from "@temporalio/client";

interface HistoryEvent {
  eventId?: { toString(): string } | null;
  activityTaskScheduledEventAttributes?: { activityType?: { name?: string | null } | null } | null;
  activityTaskStartedEventAttributes?: { scheduledEventId?: { toString(): string } | null; identity?: string | null } | null;
}

/** Per worker identity, how many activities of type `activityType` it started (every attempt), from the workflow's history. */
export async function startsByWorker(handle: Pick<WorkflowHandle, "fetchHistory">, activityType: string): Promise<Map<string, number>> {
  const events = ((await handle.fetchHistory()).events ?? []) as HistoryEvent[];
  const ofType = new Set(events.filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === activityType).map((event) => String(event.eventId)));
  const starts = new Map<string, number>();
  for (const event of events) {
    const started = event.activityTaskStartedEventAttributes;
    if (!started || !ofType.has(String(started.scheduledEventId))) continue;
    const identity = started.identity ?? "(none)";
    starts.set(identity, (starts.get(identity) ?? 0) + 1);
  }
  return starts;
}

/**
 * Waits until `count` of the workflow's activities run at once, and returns which worker runs each. A
 * started activity is written to the history only when it ends; until then describe() lists it.
 */
export async function running(handle: Pick<WorkflowHandle, "describe">, count: number, timeoutMs = 60_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pending = (await handle.describe()).raw.pendingActivities ?? [];
    const started = pending.filter((activity) => activity.lastStartedTime && activity.lastWorkerIdentity).map((activity) => activity.lastWorkerIdentity!);
    if (started.length >= count) return started;
    if (Date.now() > deadline) throw new Error(`${started.length} of ${count} activities were running after ${timeoutMs / 1000} s (started by ${started.join(", ") || "nobody"}, ${pending.length} pending)`);
    await sleep(50);
  }
}

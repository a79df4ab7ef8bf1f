import { proxyActivities, proxyLocalActivities, workflowInfo } from "@temporalio/workflow";
import type { createCycleActivities } from "../activities/cycle-activities.ts";
import type { createGepaActivities } from "../activities/gepa-activities.ts";
import { agentBatchQueue } from "./task-queues.ts";
import type { CycleSettings } from "./types.ts";

type Activities = ReturnType<typeof createCycleActivities> & ReturnType<typeof createGepaActivities>;

/** Short store operations: retried freely, they are idempotent. */
const STORE_STEP = {
  startToCloseTimeout: "1 minute",
  retry: { initialInterval: "1 second", maximumInterval: "30 seconds", maximumAttempts: 10 },
} as const;

/**
 * The cycle's activities, each group with the durability contract of its call sites: timeouts,
 * heartbeats and retries are read here, where a reader of the workflow looks for them.
 */
export function cycleActivities(settings: Pick<CycleSettings, "batchTimeoutMinutes" | "heartbeatTimeoutSeconds" | "optimizer">) {
  return {
    /**
     * The store steps the cycle waits for, as local activities: they run on the worker
     * that runs the workflow task, in that task, so each costs no round trip through the Temporal server
     * (a cycle has a dozen; each round trip was 20-40 ms of a cycle's wall time). A worker dying mid-way
     * runs one again, which idempotence makes harmless.
     */
    bookkeeping: proxyLocalActivities<Activities>(STORE_STEP),
    /**
     * Progress for watchers, never awaited by the cycle: regular activities, because a local activity holds
     * its workflow task open until it ends, and with it every activity that task schedules (a phase's batches).
     */
    progressReports: proxyActivities<Activities>(STORE_STEP),
    // On the batch queue, never eagerly: eager dispatch would hand every batch back to the worker that
    // scheduled it (while it has free slots) instead of to the worker with room for it.
    agentBatches: proxyActivities<Activities>({
      taskQueue: agentBatchQueue(workflowInfo().taskQueue),
      allowEagerDispatch: false,
      startToCloseTimeout: `${settings.batchTimeoutMinutes} minutes`,
      heartbeatTimeout: `${settings.heartbeatTimeoutSeconds} seconds`,
      retry: { initialInterval: "2 seconds", maximumInterval: "1 minute", maximumAttempts: 5 },
    }),
    // Scoring may call an LLM judge per rollout: it gets a batch's time, not a bookkeeping minute.
    scoring: proxyActivities<Activities>({
      startToCloseTimeout: `${settings.batchTimeoutMinutes} minutes`,
      retry: { initialInterval: "2 seconds", maximumInterval: "1 minute", maximumAttempts: 5 },
    }),
    // The probe that the agent's model loads and answers: a few quick tries, then the cycle fails with its error.
    // Local, like the bookkeeping: it runs once per cycle, just before the batches, and a server round trip
    // there delays them all.
    preflight: proxyLocalActivities<Activities>({
      startToCloseTimeout: `${settings.batchTimeoutMinutes} minutes`,
      retry: { initialInterval: "2 seconds", maximumInterval: "10 seconds", maximumAttempts: 3 },
    }),
    optimizer: proxyActivities<Activities>({
      startToCloseTimeout: `${settings.optimizer.timeoutMinutes + 1} minutes`,
      heartbeatTimeout: `${settings.heartbeatTimeoutSeconds} seconds`,
      // A crash or a hang may pass; bad input and contract violations are non-retryable failures.
      retry: { initialInterval: "2 seconds", maximumInterval: "30 seconds", maximumAttempts: 3 },
      cancellationType: "WAIT_CANCELLATION_COMPLETED",
    }),
  };
}

export type CycleActivities = ReturnType<typeof cycleActivities>;

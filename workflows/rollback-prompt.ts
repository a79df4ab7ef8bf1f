import { proxyActivities } from "@temporalio/workflow";
import type { createRollbackActivities, RollbackPromptInput, RollbackPromptResult } from "../activities/rollback-activities.ts";

const { rollbackPromptLabel } = proxyActivities<ReturnType<typeof createRollbackActivities>>({
  startToCloseTimeout: "1 minute",
  // A store hiccup may pass; bad input and lost compare-and-sets fail at once (non-retryable).
  retry: { initialInterval: "1 second", maximumInterval: "10 seconds", maximumAttempts: 5 },
});

/**
 * Moves an agent's `production` label (or another) back to an earlier version, for automation (an
 * alert, a schedule). The same store operation as `agl prompts rollback`, audited as `rolled_back`.
 */
export async function rollbackPrompt(input: RollbackPromptInput): Promise<RollbackPromptResult> {
  return rollbackPromptLabel(input);
}

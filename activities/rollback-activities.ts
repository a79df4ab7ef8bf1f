import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import { ConflictError } from "../store/errors.ts";
import type { LoadedConfig } from "../config/load.ts";
import type { Store } from "../store/index.ts";
import { rethrowNonRetryable } from "./cycle-activities.ts";

export interface RollbackPromptInput {
  agent: string;
  /** The earlier version the label goes back to. */
  toVersion: number;
  /** Default `production`. */
  label?: string;
  /** Compare-and-set: fail unless the label still points at this version. */
  expectedVersion?: number;
  /** Who asked, for the audit trail; default `workflow:<workflow id>`. */
  actor?: string;
  reason?: string;
}

export interface RollbackPromptResult {
  resource: string;
  label: string;
  fromVersion: number | null;
  toVersion: number;
  eventId: number;
}

export function createRollbackActivities(deps: { store: Store; config: Pick<LoadedConfig, "agents"> }) {
  /** The store's rollback, keyed by the workflow so a retry after a lost completion returns the first move. */
  async function rollbackPromptLabel(input: RollbackPromptInput): Promise<RollbackPromptResult> {
    const { workflowExecution, activityId } = Context.current().info;
    // Standalone activities have no workflow: their own id keys the move then.
    const workflowId = workflowExecution?.workflowId ?? activityId;
    try {
      const agent = deps.config.agents.get(input.agent);
      const { event } = await deps.store.resources.rollback({
        name: agent.prompt.resource,
        toVersion: input.toVersion,
        actor: input.actor ?? `workflow:${workflowId}`,
        idempotencyKey: `rollback:${workflowId}`,
        ...(input.label ? { label: input.label } : {}),
        ...(input.expectedVersion !== undefined ? { expectedVersion: input.expectedVersion } : {}),
        ...(input.reason ? { reason: input.reason } : {}),
      });
      return { resource: event.name, label: event.label!, fromVersion: event.fromVersion, toVersion: event.toVersion!, eventId: event.id };
    } catch (error) {
      // Unknown names, a version that is not earlier, a lost compare-and-set: the same on every attempt.
      if (error instanceof ConflictError) throw ApplicationFailure.nonRetryable(error.message, error.name);
      return rethrowNonRetryable(error);
    }
  }

  return { rollbackPromptLabel };
}

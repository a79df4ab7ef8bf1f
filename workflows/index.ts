// The workflow bundle's entry point: every workflow type the worker registers.
export { trainingCycle } from "./training-cycle.ts";
export { rollbackPrompt } from "./rollback-prompt.ts";
export { processSubmission } from "./submission.ts";
export { evaluatePrompts } from "./evaluation.ts";
export { canaryGuard } from "./canary-guard.ts";
export { deliverWebhook } from "./webhook-delivery.ts";

/**
 * Agent batches have a task queue of their own beside the one workflows and short activities use.
 * Every worker polls both, and takes from the batch queue only as many batches as its model can run
 * (`worker.maxBatches`), so a cycle's batches spread over the workers by capacity. Imported by the
 * workflows: no Node APIs here.
 */
export function agentBatchQueue(taskQueue: string): string {
  return `${taskQueue}-batches`;
}

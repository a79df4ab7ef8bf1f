/** A named thing (resource, version, label, dataset, cycle, rollout) does not exist. */
export class NotFoundError extends Error {
  override name = "NotFoundError";
}

/** A compare-and-set lost: someone else changed the value first. Nothing was written. */
export class ConflictError extends Error {
  override name = "ConflictError";
}

/** The input was rejected before anything was written. */
export class InvalidInputError extends Error {
  override name = "InvalidInputError";
}

import { expect } from "vitest";

/** The error `run` throws, checked to be a `kind`; a run that returns fails the test. */
export function thrownBy<E extends Error>(run: () => unknown, kind: abstract new (...args: never[]) => E): E {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(kind);
    return error as E;
  }
  throw new Error(`expected a ${kind.name}, but the call returned`);
}

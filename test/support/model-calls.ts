import { appendFileSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LanguageModelV2 } from "@ai-sdk/provider";

/**
 * TEST AID around a FAKE model: every call appends one line to `file` before it is answered, so a test
 * counts agent runs, not stored rows (a re-run of a stored task shows as an extra call, where the row
 * it writes again cannot), and the calls of a worker process the test SIGKILLs still count.
 */
export function countingModel(model: LanguageModelV2, file: string): LanguageModelV2 {
  return {
    ...model,
    doGenerate(options) {
      appendFileSync(file, "call\n");
      return model.doGenerate(options);
    },
    doStream(options) {
      appendFileSync(file, "call\n");
      return model.doStream(options);
    },
  };
}

/** A fresh file for `countingModel`, in a folder of its own. */
export function modelCallsFile(): string {
  return join(mkdtempSync(join(tmpdir(), "agl-model-calls-")), "calls");
}

/** How many calls `countingModel` has recorded in `file`. */
export function modelCalls(file: string): number {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).length : 0;
}

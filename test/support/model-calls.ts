import { appendFileSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LanguageModelV2 } from "@ai-sdk/provider";

/**
 * TEST AID around a FAKE model: every answered call appends one line to `file`, so a test counts agent
 * runs, not stored rows (a re-run of a stored task shows as an extra call, where the row it would write
 * again cannot exist), across processes. A call aborted before its answer (its activity cancelled) is
 * not counted: it ran nothing a retry could have skipped.
 */
export function countingModel(model: LanguageModelV2, file: string): LanguageModelV2 {
  return {
    ...model,
    async doGenerate(options) {
      const answer = await model.doGenerate(options);
      appendFileSync(file, "call\n");
      return answer;
    },
    async doStream(options) {
      const answer = await model.doStream(options);
      appendFileSync(file, "call\n");
      return answer;
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

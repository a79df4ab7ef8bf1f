import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LanguageModelV2, LanguageModelV2Prompt } from "@ai-sdk/provider";

/**
 * TEST AID around a FAKE model: every answered call appends one line to `file` (a hash of what the model
 * was told, so a test can also see which runs were repeated), so a test counts agent
 * runs, not stored rows (a re-run of a stored task shows as an extra call, where the row it would write
 * again cannot exist), across processes. A call aborted before its answer (its activity cancelled) is
 * not counted: it ran nothing a retry could have skipped.
 */
export function countingModel(model: LanguageModelV2, file: string): LanguageModelV2 {
  return {
    ...model,
    async doGenerate(options) {
      const answer = await model.doGenerate(options);
      appendFileSync(file, `${promptHash(options.prompt)}\n`);
      return answer;
    },
    async doStream(options) {
      const answer = await model.doStream(options);
      appendFileSync(file, `${promptHash(options.prompt)}\n`);
      return answer;
    },
  };
}

/** The system prompt and the user's words: Mastra's messages also carry ids that differ on every call. */
function promptHash(prompt: LanguageModelV2Prompt): string {
  const said = prompt.map((message) => (message.role === "system" ? message.content : message.role === "user" ? message.content.map((part) => (part.type === "text" ? part.text : "")).join("") : ""));
  return createHash("sha256").update(said.join("\n")).digest("hex").slice(0, 16);
}

/** A fresh file for `countingModel`, in a folder of its own. */
export function modelCallsFile(): string {
  return join(mkdtempSync(join(tmpdir(), "agl-model-calls-")), "calls");
}

/** How many calls `countingModel` has recorded in `file`. */
export function modelCalls(file: string): number {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).length : 0;
}

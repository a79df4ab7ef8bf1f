import { existsSync } from "node:fs";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { InvalidInputError } from "../store/errors.ts";

/** The example project's files an `agl init` writes: a config, one agent of your own, its data set. */
const SKELETON = ["agl.config.ts", "src/ticket-triage.ts", "data/tickets.jsonl"] as const;
const EXAMPLE = fileURLToPath(new URL("../examples/your-agent/", import.meta.url));

export function registerInitCommand(program: Command): void {
  program
    .command("init")
    .description("write a starting point into a project: agl.config.ts, an agent of your own (src/ticket-triage.ts) and its data set")
    .argument("[dir]", "the project folder", ".")
    .action(async (dir: string) => {
      const target = resolve(dir);
      const existing = SKELETON.filter((file) => existsSync(join(target, file)));
      // All or nothing: a half-written skeleton would be worse than none.
      if (existing.length > 0) throw new InvalidInputError(`${existing.map((file) => join(target, file)).join(", ")} already exist${existing.length > 1 ? "" : "s"}; nothing was written.`);
      for (const file of SKELETON) {
        await mkdir(dirname(join(target, file)), { recursive: true });
        await copyFile(join(EXAMPLE, file), join(target, file));
      }
      const shown = relative(process.cwd(), target) || ".";
      console.log(`Wrote ${SKELETON.map((file) => join(shown, file)).join(", ")}.`);
      console.log("Next: npm install agent-training-loop @mastra/core zod (if your project lacks them), then");
      console.log("  npx agl dataset import data/tickets.jsonl --name tickets");
      console.log("  npx agl cycle start --agent ticket-triage --dataset tickets --wait");
    });
}

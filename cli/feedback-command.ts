import { type Command, Option } from "commander";
import { feedbackSchema, recordFeedback } from "../scorers/human-feedback.ts";
import { InvalidInputError } from "../store/errors.ts";
import { rewardJson } from "../store/rollouts.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";
import { printJson } from "./output.ts";

interface FeedbackOptions {
  rating?: string;
  thumbs?: "up" | "down";
  comment?: string;
  user?: string;
  feedbackId?: string;
  json?: boolean;
}

const FLAGS: Record<string, string> = { rolloutId: "ROLLOUT", rating: "--rating", thumbs: "--thumbs", comment: "--comment", user: "--user", feedbackId: "--feedback-id" };

export function registerFeedbackCommand(program: Command): void {
  program
    .command("feedback")
    .description("record a person's verdict on a rollout as a reward: rating 1-5 -> (rating - 3) / 2, thumbs up +1 / down -1 (scorer \"human\")")
    .argument("<rollout>", "rollout id (ro-…)")
    .option("--rating <n>", "1 (bad) to 5 (good)")
    .addOption(new Option("--thumbs <verdict>", "instead of a rating").choices(["up", "down"]))
    .option("--comment <text>", "why; quoted in the reward's reason")
    .option("--user <name>", "who gave it")
    .option("--feedback-id <id>", "makes a repeated command record it once")
    .option("--json", "print machine-readable JSON")
    .action(async (rolloutId: string, options: FeedbackOptions, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const parsed = feedbackSchema.safeParse({
        rolloutId,
        ...(options.rating !== undefined ? { rating: /^\s*-?\d+(\.\d+)?\s*$/.test(options.rating) ? Number(options.rating) : options.rating } : {}),
        ...(options.thumbs ? { thumbs: options.thumbs } : {}),
        ...(options.comment !== undefined ? { comment: options.comment } : {}),
        ...(options.user !== undefined ? { user: options.user } : {}),
        ...(options.feedbackId !== undefined ? { feedbackId: options.feedbackId } : {}),
      });
      if (!parsed.success) {
        throw new InvalidInputError(`${parsed.error.issues.map((issue) => `${FLAGS[String(issue.path[0])] ?? "feedback"}: ${issue.message}`).join("; ")}. Nothing was recorded.`);
      }
      await withRuntime(config, { store: true, command: "agl feedback" }, async (runtime) => {
        const { reward, created } = await recordFeedback(runtime.store, parsed.data);
        if (options.json) return printJson({ created, reward: rewardJson(reward) });
        const value = `${reward.value >= 0 ? "+" : ""}${reward.value.toFixed(2)}`;
        console.log(created ? `Recorded reward ${value} on ${reward.rolloutId} (human: ${reward.reason}).` : `Already recorded as feedback ${reward.dedupeKey} on ${reward.rolloutId}: ${value} (${reward.reason}); nothing changed.`);
      });
    });
}

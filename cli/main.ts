import { Command, CommanderError } from "commander";
import { ConfigError } from "../config/load.ts";
import { ConflictError, InvalidInputError, NotFoundError } from "../store/errors.ts";
import { registerAnalyzeCommand } from "./analyze-command.ts";
import { registerCanaryCommands } from "./canary-commands.ts";
import { installSignalHandlers } from "./context.ts";
import { registerCycleCommands } from "./cycle-commands.ts";
import { registerDatasetCommands } from "./dataset-commands.ts";
import { registerEvalCommand } from "./eval-command.ts";
import { registerFeedbackCommand } from "./feedback-command.ts";
import { registerInitCommand } from "./init-command.ts";
import { registerPromptCommands } from "./prompts-commands.ts";
import { registerScheduleCommands } from "./schedule-commands.ts";
import { registerSubmitCommand } from "./submit-command.ts";
import { registerTestCommand } from "./test-command.ts";
import { registerUpCommand } from "./up-command.ts";
import { registerWorkerCommand } from "./worker-command.ts";

/** Exit codes: 0 success, 1 the operation failed, 2 the request was invalid (usage, config, unknown name, conflict). */
const EXIT_FAILED = 1;
const EXIT_INVALID = 2;

export function buildProgram(): Command {
  const program = new Command("agl")
    .description("A durable training loop for TypeScript LLM agents: Temporal runs collect -> evaluate -> train -> deploy.")
    .option("--config <file>", "config file (default: agl.config.json in the working directory, or AGL_CONFIG)")
    .option("--data-dir <dir>", "project data folder (default: .agl, or AGL_DATA_DIR)")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerCycleCommands(program);
  registerPromptCommands(program);
  registerDatasetCommands(program);
  registerWorkerCommand(program);
  registerUpCommand(program);
  registerScheduleCommands(program);
  registerSubmitCommand(program);
  registerFeedbackCommand(program);
  registerEvalCommand(program);
  registerAnalyzeCommand(program);
  registerInitCommand(program);
  registerTestCommand(program);
  registerCanaryCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  installSignalHandlers();
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT_INVALID;
    const invalid = error instanceof ConfigError || error instanceof InvalidInputError || error instanceof NotFoundError || error instanceof ConflictError;
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    if (!invalid && process.env.AGL_DEBUG && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    return invalid ? EXIT_INVALID : EXIT_FAILED;
  }
}

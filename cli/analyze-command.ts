import type { Command } from "commander";
import { analyzeAgent, parseSince } from "../runtime/analysis.ts";
import type { Analysis, Interval, Percentiles, VersionAnalysis } from "../store/analysis.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";
import { formatTime, percent, printJson, table } from "./output.ts";

export function registerAnalyzeCommand(program: Command): void {
  program
    .command("analyze")
    .description("per prompt version: rollouts, mean reward with a 95% confidence interval, per-field accuracy and confusion matrices, latency and token percentiles")
    .requiredOption("--agent <agent>", "agent id, e.g. post-analyzer")
    .option("--since <time>", "only rollouts created since: a time (2026-11-25T08:00:00Z) or a duration back from now (24h, 7d)")
    .option("--json", "print machine-readable JSON")
    .action(async (options: { agent: string; since?: string; json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const since = options.since === undefined ? undefined : parseSince(options.since, "--since");
      await withRuntime(config, { store: true, command: "agl analyze" }, async (runtime) => {
        const analysis = await analyzeAgent(runtime.store, config, options.agent, since);
        if (options.json) return printJson(analysis);
        printAnalysis(analysis);
      });
    });
}

function printAnalysis(analysis: Analysis): void {
  const window = analysis.since ? `since ${formatTime(analysis.since)}` : "all time";
  console.log(`Agent ${analysis.agent}, ${window}; reward = mean of a rollout's ${analysis.scorers.join(", ")} rewards, 95% confidence interval.`);
  if (analysis.versions.length === 0) {
    console.log(`No rollouts. Feed the loop: agl submit FILE --agent ${analysis.agent}, or send traces to POST /v1/traces.`);
    return;
  }
  console.log(
    `\n${table(
      ["VERSION", "ROLLOUTS", "FAILED", "REWARD", "95% CI", "LATENCY ms p50/p90/p99", "TOKENS p50/p90/p99"],
      analysis.versions.map((version) => [
        name(version),
        version.rollouts,
        version.failed,
        version.reward ? `${version.reward.mean.toFixed(3)} (n=${version.reward.n})` : "-",
        confidence(version.reward),
        spread(version.latencyMs),
        spread(version.tokens),
      ]),
    )}`,
  );
  const byScorer = analysis.versions.flatMap((version) =>
    Object.entries(version.rewardByScorer).map(([scorer, reward]) => [name(version), scorer, reward.n, reward.mean.toFixed(3), confidence(reward)]),
  );
  if (byScorer.length > 0) console.log(`\n${table(["VERSION", "SCORER", "N", "MEAN", "95% CI"], byScorer)}`);
  for (const version of analysis.versions) {
    const fields = Object.entries(version.fieldAccuracy);
    if (fields.length === 0) continue;
    console.log(`\n${name(version)} against ground truth: ${fields.map(([field, score]) => `${field} ${percent(score.accuracy)} (${score.right}/${score.total})`).join(", ")}`);
    for (const [field, matrix] of Object.entries(version.confusion)) {
      console.log(`\n${field}: rows expected, columns answered`);
      console.log(table([`expected \\ answered`, ...matrix.actual], matrix.expected.map((label, row) => [label, ...matrix.counts[row]!])));
    }
  }
}

function name(version: VersionAnalysis): string {
  return version.version === null ? "(none)" : `v${version.version}`;
}

function confidence(reward: Interval | null): string {
  return reward && reward.low !== null && reward.high !== null ? `[${reward.low.toFixed(3)}, ${reward.high.toFixed(3)}]` : "-";
}

function spread(values: Percentiles | null): string {
  if (!values) return "-";
  return [values.p50, values.p90, values.p99].map((value) => String(Math.round(value))).join("/");
}

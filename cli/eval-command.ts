import type { Command } from "commander";
import { addMissingRewards, expectedOf, type RewardingCounts } from "../activities/rewarding.ts";
import { parseSince } from "../runtime/analysis.ts";
import { computedScorer, scoringContext, scoringPlan } from "../scorers/registry.ts";
import { InvalidInputError } from "../store/errors.ts";
import { configFrom, type GlobalOptions, withRuntime } from "./context.ts";
import { printJson, ProgressBar, table } from "./output.ts";

/** Rollouts read and scored per round trip; rewards are written as they come. */
const PAGE = 200;
/** Failures quoted in the report; the count covers all of them. */
const QUOTED_FAILURES = 10;

export function registerEvalCommand(program: Command): void {
  program
    .command("eval")
    .description("add computed rewards (ground truth, the LLM judge) to rollouts that exist already; running it again adds nothing twice")
    .requiredOption("--agent <agent>", "agent id, e.g. post-analyzer")
    .option("--since <time>", "only rollouts created since: a time (2026-11-25T08:00:00Z) or a duration back from now (24h, 7d)")
    .option("--scorer <scorer>", "one computed scorer (ground-truth, judge, or one of the agent's own); default: the agent's computed scorers (or those in cycle.scorers)")
    .option("--json", "print machine-readable JSON")
    .action(async (options: { agent: string; since?: string; scorer?: string; json?: boolean }, command: Command) => {
      const config = await configFrom(command.optsWithGlobals<GlobalOptions>());
      const agent = config.agents.get(options.agent);
      const since = options.since === undefined ? undefined : parseSince(options.since, "--since");
      const plan = scoringPlan(agent, config.cycle.scorers);
      const scorers = options.scorer ? [computedScorer(plan, agent, options.scorer)] : plan.computed;
      if (scorers.length === 0) {
        throw new InvalidInputError(`Agent ${agent.id}'s scorers (${plan.ids.join(", ")}) include no computed one: pass --scorer ground-truth|judge.`);
      }
      const context = scoringContext(config);
      await withRuntime(config, { store: true, command: `agl eval --agent ${agent.id}` }, async (runtime) => {
        const store = runtime.store;
        const total = await store.rollouts.countForAgent({ agent: agent.id, ...(since ? { since } : {}) });
        const bar = options.json ? undefined : new ProgressBar();
        const counts: RewardingCounts = { scored: 0, alreadyScored: 0, notScorable: 0, failed: 0 };
        const failures: { rolloutId: string; scorer: string; error: string }[] = [];
        let done = 0;
        try {
          for (let afterId: string | undefined; ; ) {
            const page = await store.rollouts.listForAgent({ agent: agent.id, limit: PAGE, ...(since ? { since } : {}), ...(afterId !== undefined ? { afterId } : {}) });
            if (page.length === 0) break;
            const outcome = await addMissingRewards(store, page, scorers, {
              expected: await expectedOf(store, page),
              context,
              concurrency: config.cycle.concurrency,
              onProgress: (pageDone) => bar?.update("eval", done + pageDone, total),
            });
            for (const key of Object.keys(counts) as (keyof RewardingCounts)[]) counts[key] += outcome.counts[key];
            failures.push(...outcome.failures);
            done += page.length;
            afterId = page.at(-1)!.id;
          }
        } finally {
          bar?.finish();
        }
        const report = { agent: agent.id, since: since?.toISOString() ?? null, scorers: scorers.map((scorer) => scorer.id), rollouts: done, ...counts, failures: failures.slice(0, QUOTED_FAILURES) };
        if (options.json) printJson(report);
        else printReport(report);
        if (counts.failed > 0) throw new Error(`${counts.failed} rewards could not be computed (${failures[0]!.scorer} on ${failures[0]!.rolloutId}: ${failures[0]!.error}); run agl eval again to retry them.`);
      });
    });
}

function printReport(report: RewardingCounts & { agent: string; rollouts: number; scorers: string[]; failures: { rolloutId: string; scorer: string; error: string }[] }): void {
  console.log(
    `${report.rollouts} rollouts of ${report.agent} x ${report.scorers.join(", ")}: ${report.scored} rewards added, ${report.alreadyScored} already scored, ${report.notScorable} not scorable, ${report.failed} failed.`,
  );
  if (report.failures.length > 0) console.log(table(["ROLLOUT", "SCORER", "ERROR"], report.failures.map((failure) => [failure.rolloutId, failure.scorer, failure.error])));
}

import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { agl, cleanEnv, finished, json, removeDir, ROOT, tempDir } from "./support.ts";

/**
 * A user's project outside this repository: the example in examples/your-agent, copied to a temporary
 * folder, depending on this package by path, installed with npm, and driven with `npx agl` there. Its
 * agent (its own Mastra agent, its own scorer) is defined in its own files; nothing of this repo is edited.
 */
describe("a project of your own: examples/your-agent installed elsewhere", () => {
  let project: string;
  let env: Record<string, string>;
  const npx = async (args: string[], timeoutMs = 150_000) =>
    finished(await execa("npx", ["--no-install", "agl", ...args], { cwd: project, env, extendEnv: false, reject: false, timeout: timeoutMs }));

  beforeAll(async () => {
    project = tempDir("agl-your-agent-");
    cpSync(join(ROOT, "examples/your-agent"), project, { recursive: true, filter: (source) => !/node_modules|\.agl/.test(source) });
    const manifest = JSON.parse(readFileSync(join(project, "package.json"), "utf8"));
    manifest.dependencies["agent-training-loop"] = `file:${ROOT}`;
    writeFileSync(join(project, "package.json"), JSON.stringify(manifest, null, 2));
    env = cleanEnv({ AGL_MODEL: "fake" });
    const install = await execa("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], { cwd: project, env, extendEnv: false, reject: false, timeout: 240_000 });
    expect(install.exitCode, install.stderr).toBe(0);
  }, 250_000);
  afterAll(() => removeDir(project));

  test("npx agl: import its data set, train its agent to v2 with its own scorer, roll back", { timeout: 240_000 }, async () => {
    const imported = await npx(["dataset", "import", "data/tickets.jsonl", "--name", "tickets", "--json"]);
    expect(imported.exitCode, imported.stderr).toBe(0);
    expect(json(imported)).toMatchObject({ name: "tickets", agent: "ticket-triage", taskCount: 80, splits: { train: 56, validation: 24 } });

    const cycle = await npx(["cycle", "start", "--agent", "ticket-triage", "--dataset", "tickets", "--wait", "--json"]);
    expect(cycle.exitCode, cycle.stderr).toBe(0);
    const result = json(cycle);
    expect(result).toMatchObject({ agent: "ticket-triage", outcome: "deployed", incumbentVersion: 1, deployedVersion: 2, collect: { rollouts: 56, failed: 0 }, baseline: { rollouts: 24, failed: 0 } });
    expect(result.best.meanReward).toBeGreaterThan(result.baseline.meanReward);

    // Both of the agent's scorers rewarded its rollouts: the built-in ground truth and the project's own Mastra scorer.
    const analysis = json(await npx(["analyze", "--agent", "ticket-triage", "--json"]));
    expect(analysis.scorers).toEqual(["ground-truth", "no-missed-outage"]);
    expect(Object.keys(analysis.versions[0].rewardByScorer).sort()).toEqual(["ground-truth", "no-missed-outage"]);

    const rollback = await npx(["prompts", "rollback", "ticket-triage", "--to", "1", "--reason", "back to the seed", "--json"]);
    expect(rollback.exitCode, rollback.stderr).toBe(0);
    const versions = json<any[]>(await npx(["prompts", "list", "ticket-triage", "--json"]));
    expect(versions.map((version) => [version.version, version.labels])).toEqual([
      [1, ["production"]],
      [2, []],
    ]);
  });
});

describe("agl init", () => {
  test("writes the example's config, agent and data set into a project, and never over files that exist", async () => {
    const dir = tempDir("agl-init-");
    try {
      const env = cleanEnv({});
      const first = await agl(["init", dir], { env });
      expect(first.exitCode, first.stderr).toBe(0);
      for (const file of ["agl.config.ts", "src/ticket-triage.ts", "data/tickets.jsonl"]) {
        expect(readFileSync(join(dir, file), "utf8")).toBe(readFileSync(join(ROOT, "examples/your-agent", file), "utf8"));
      }
      writeFileSync(join(dir, "agl.config.ts"), "// mine\n");
      const again = await agl(["init", dir], { env });
      expect(again.exitCode).toBe(2);
      expect(again.stderr).toContain(`${join(dir, "agl.config.ts")}, ${join(dir, "src/ticket-triage.ts")}, ${join(dir, "data/tickets.jsonl")} already exist; nothing was written.`);
      expect(readFileSync(join(dir, "agl.config.ts"), "utf8")).toBe("// mine\n");
      expect(existsSync(join(dir, ".agl"))).toBe(false);
    } finally {
      removeDir(dir);
    }
  });
});

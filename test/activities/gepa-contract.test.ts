import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { reflectableComponents } from "../../activities/gepa-activities.ts";
import { agentSpecFor, algorithmRefusal, contractViolations, OPTIMIZER_CONTRACT_VERSION, type OptimizerRequest, type OptimizerResponse, optimizerRequestSchema } from "../../activities/optimizer-contract.ts";
import { OptimizerError, runOptimizer } from "../../activities/python-bridge.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";

const seed = postAnalyzer.prompt.seed.components;
const categories = seed.categories!.replace("AI, programming and gadgets", "AI, programming, gadgets and kubernetes");
const sentiments = seed.sentiments!.replace("proud or grateful", "proud, grateful or thrilled");
const scratch = mkdtempSync(join(tmpdir(), "agl-gepa-contract-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Iteration 3's merge of two children of the incumbent, one with new categories, one with new sentiments. */
function mergeRequest(): OptimizerRequest {
  return {
    schema_version: OPTIMIZER_CONTRACT_VERSION,
    command: "propose",
    request_id: "cy-test/gepa/3/merge",
    algorithm: "gepa",
    seed: 42,
    round: 3,
    params: { max_tokens: 512 },
    agent: agentSpecFor(postAnalyzer, seed),
    prompt: { version: 1, engine: "placeholders", components: { ...seed } },
    parents: [
      { id: "r2c1", components: { ...seed, sentiments } },
      { id: "r1c1", components: { ...seed, categories } },
    ],
    rollouts: [],
    llm: null,
    gepa: { step: "merge", ancestor: { id: "incumbent", components: { ...seed } } },
  };
}

const issuesOf = (request: unknown) => {
  const parsed = optimizerRequestSchema.safeParse(request);
  return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
};

describe("the gepa step in contract v3 (TypeScript side)", () => {
  test("algorithm gepa needs its step, and only gepa takes one", () => {
    expect(issuesOf(mergeRequest())).toEqual([]);
    expect(issuesOf({ ...mergeRequest(), gepa: undefined })).toEqual(['gepa: algorithm "gepa" needs its step']);
    expect(issuesOf({ ...mergeRequest(), algorithm: "apo" })).toEqual(['gepa: only algorithm "gepa" takes a gepa step, not "apo"']);
    expect(issuesOf({ ...mergeRequest(), gepa: { step: "reflect" } })).toEqual(["gepa.component: Invalid input: expected string, received undefined"]);
    expect(issuesOf({ ...mergeRequest(), gepa: { step: "reflect", component: "instructions" } })).toEqual(["parents: a gepa reflect step takes exactly 1 parent"]);
    expect(issuesOf({ ...mergeRequest(), parents: mergeRequest().parents.slice(1) })).toEqual(["parents: a gepa merge step takes exactly 2 parents"]);
    expect(issuesOf({ ...mergeRequest(), gepa: { step: "merge", ancestor: { id: "incumbent", components: {} }, component: "x" } })).toHaveLength(1);
  });

  test("a gepa step makes at most one child", () => {
    const child = (id: string, components: Record<string, string>) => ({ id, parent: "r2c1", strategy: "gepa-merge", components, rationale: "why", train_score: null });
    const response: OptimizerResponse = {
      schema_version: OPTIMIZER_CONTRACT_VERSION,
      request_id: "cy-test/gepa/3/merge",
      algorithm: "gepa",
      seed: 42,
      round: 3,
      candidates: [child("r3c1", { ...seed, categories, sentiments }), child("r3c2", { ...seed, sentiments, instructions: `${seed.instructions} Be brief.` })],
      rounds: [],
      stats: {},
    };
    expect(contractViolations(mergeRequest(), response)).toEqual(["a gepa merge step makes at most one child, got 2"]);
  });

  test("gepa applies where apo does: an agent with an editable free-text or label component; a reflection rewrites those in the agent's order", () => {
    expect(algorithmRefusal(postAnalyzer, "gepa")).toBeUndefined();
    const onlyExamples = { ...postAnalyzer, prompt: { ...postAnalyzer.prompt, editable: ["examples"] } };
    expect(algorithmRefusal(onlyExamples, "gepa")).toBe(
      `optimizer "gepa" cannot train agent "post-analyzer": it rewrites instructions and label descriptions, and none of the agent's editable components is one (prompt.editable)`,
    );
    // Stored prompts come back with their keys in the database's order; the round-robin follows the agent's.
    const stored = { examples: "", categories: seed.categories!, sentiments: seed.sentiments!, instructions: seed.instructions! };
    expect(reflectableComponents(postAnalyzer, stored)).toEqual(["instructions", "categories", "sentiments"]);
  });
});

describe("the gepa step through the bridge, into the real Python optimizer", () => {
  test("a merge takes each component from the parent that changed it; both sides validate the answer", async () => {
    const response = await runOptimizer({ command: [".venv/bin/python", "-m", "agl_optimizer"], workDir: scratch, request: mergeRequest(), timeoutMs: 60_000 });
    expect(response.candidates).toEqual([
      {
        id: "r3c1",
        parent: "r2c1",
        strategy: "gepa-merge",
        components: { ...seed, categories, sentiments },
        rationale: "Merge of r2c1 and r1c1, descendants of incumbent: categories from r1c1; sentiments from r2c1.",
        train_score: null,
      },
    ]);
    expect(response.stats).toMatchObject({ llm_calls: 0, rejected_edits: 0 });
  });

  test("a reflection on a component it may not rewrite is refused as bad input", async () => {
    const request: OptimizerRequest = {
      ...mergeRequest(),
      request_id: "cy-test/gepa/3/reflect",
      parents: [mergeRequest().parents[0]!],
      rollouts: [
        {
          id: "ro-1",
          task_id: "p1",
          prompt_id: "r2c1",
          input: { content: "k8s again" },
          message: "Post: k8s again",
          output: { category: "general", sentiment: "neutral" },
          expected: { category: "technology", sentiment: "negative" },
          reward: -1,
          rewards: [{ scorer: "ground-truth", value: -1, reason: "category wrong; sentiment wrong" }],
          error: null,
        },
      ],
      llm: { base_url: "http://127.0.0.1:9/v1", model: "fake", api_key: null, timeout_s: 5 },
      gepa: { step: "reflect", component: "examples" },
    };
    const failure = await runOptimizer({ command: [".venv/bin/python", "-m", "agl_optimizer"], workDir: scratch, request, timeoutMs: 60_000 }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OptimizerError);
    expect(failure).toMatchObject({ kind: "bad-input", retryable: false });
    expect((failure as Error).message).toContain("'examples' is not a component a reflection may rewrite (these are: instructions, categories, sentiments)");
  });
});

import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import {
  agentSpecFor,
  contractViolations,
  OPTIMIZER_CONTRACT_VERSION,
  type OptimizerRequest,
  type OptimizerResponse,
  optimizerResponseSchema,
} from "../../activities/optimizer-contract.ts";
import { OptimizerError, type OptimizerProgress, runOptimizer } from "../../activities/python-bridge.ts";
import { readDatasetFile } from "../../agents/dataset-file.ts";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { createAgentRunner } from "../../agents/runner.ts";
import { fakeJudgeModel } from "../../scorers/fake-judge-model.ts";
import { computedScorer, scoringPlan } from "../../scorers/registry.ts";

const groundTruthScorer = computedScorer(scoringPlan(postAnalyzer, undefined), postAnalyzer, "ground-truth");
const scoring = { judgeModel: fakeJudgeModel };

const PYTHON = ".venv/bin/python";
const REAL_OPTIMIZER = [PYTHON, "-m", "agl_optimizer"];
const FAKE_OPTIMIZER = fileURLToPath(new URL("../fixtures/fake_optimizer.py", import.meta.url));
const fakeOptimizer = (mode: string, ...args: string[]) => [PYTHON, FAKE_OPTIMIZER, mode, ...args];

let scratch: string;
let workDir: string;
let testNumber = 0;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "agl-bridge-"));
});

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

beforeEach(() => {
  workDir = join(scratch, `work-${++testNumber}`);
});

function requestFor(rollouts: OptimizerRequest["rollouts"], requestId = "cycle-1/train/1"): OptimizerRequest {
  return {
    schema_version: OPTIMIZER_CONTRACT_VERSION,
    command: "propose",
    request_id: requestId,
    algorithm: "llm-free",
    seed: 42,
    round: 1,
    params: { num_candidates: 3, max_examples: 6, max_keywords: 6 },
    agent: agentSpecFor(postAnalyzer, postAnalyzer.prompt.seed.components),
    prompt: { version: 1, engine: "placeholders", components: { ...postAnalyzer.prompt.seed.components } },
    parents: [{ id: "incumbent", components: { ...postAnalyzer.prompt.seed.components } }],
    rollouts,
    llm: null,
  };
}

/** A small request for the fake optimizers, which never look at the rollouts. */
function smallRequest(requestId = "cycle-small/train/1"): OptimizerRequest {
  return requestFor(
    [
      {
        id: "ro-1",
        task_id: "p001",
        prompt_id: "incumbent",
        input: { content: "New laptop, new compiler, builds fly" },
        message: "Post: New laptop, new compiler, builds fly",
        output: { category: "technology", sentiment: "positive" },
        expected: { category: "technology", sentiment: "positive" },
        reward: 1,
        rewards: [{ scorer: "ground-truth", value: 1, reason: "category right (technology); sentiment right (positive)" }],
        error: null,
      },
    ],
    requestId,
  );
}

/** Runs the optimizer expecting an OptimizerError and returns it. */
async function optimizerErrorOf(run: Promise<unknown>): Promise<OptimizerError> {
  try {
    await run;
  } catch (error) {
    expect(error).toBeInstanceOf(OptimizerError);
    return error as OptimizerError;
  }
  throw new Error("expected the optimizer run to fail, but it returned a response");
}

async function waitForFile(path: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path) || readFileSync(path, "utf8") === "") {
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await delay(20);
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw error;
  }
}

describe("the real Python optimizer", () => {
  let request: OptimizerRequest;

  beforeAll(async () => {
    // Real rollouts: the deterministic fake model runs over the bundled training posts and the ground-truth scorer rewards them.
    const tasks = (await readDatasetFile(postAnalyzer.datasets.posts!, postAnalyzer)).filter((task) => task.split === "train");
    const run = createAgentRunner(postAnalyzer, fakeKeywordModel());
    const rollouts: OptimizerRequest["rollouts"] = [];
    for (const task of tasks) {
      const result = await run(task.input, postAnalyzer.prompt.seed);
      const reward = await groundTruthScorer.score({ input: task.input, output: result.output, error: result.error, expected: task.expected }, scoring);
      rollouts.push({
        id: `ro-${task.id}`,
        task_id: task.id,
        prompt_id: "incumbent",
        input: task.input,
        message: postAnalyzer.message(task.input),
        output: result.output,
        expected: task.expected,
        reward: reward?.value ?? null,
        rewards: reward ? [{ scorer: groundTruthScorer.id, value: reward.value, reason: reward.reason }] : [],
        error: result.error,
      });
    }
    request = requestFor(rollouts, "cycle-real/train/1");
  });

  test("proposes candidates that keep the contract, with files named by the request id, and reuses the response on a retry", async () => {
    expect(request.rollouts.filter((rollout) => rollout.reward !== null && rollout.reward < 1).length).toBeGreaterThan(0);
    const progress: OptimizerProgress[] = [];
    const response = await runOptimizer({ command: REAL_OPTIMIZER, workDir, request, timeoutMs: 60_000, onProgress: (event) => progress.push(event) });

    expect(response.request_id).toBe(request.request_id);
    expect(response.candidates.length).toBeGreaterThanOrEqual(1);
    expect(response.candidates.length).toBeLessThanOrEqual(3);
    expect(contractViolations(request, response)).toEqual([]);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)!.done).toBe(progress.at(-1)!.total);

    const base = join(workDir, "cycle-real_train_1");
    expect(JSON.parse(readFileSync(`${base}.request.json`, "utf8"))).toEqual(request);
    expect(optimizerResponseSchema.parse(JSON.parse(readFileSync(`${base}.response.json`, "utf8")))).toEqual(response);

    // A program that would crash proves the retry read the stored response instead of running anything.
    const again = await runOptimizer({ command: fakeOptimizer("crash"), workDir, request, timeoutMs: 10_000 });
    expect(again).toEqual(response);
  });
});

describe("runOptimizer with FAKE optimizers", () => {
  test("a well-behaved program's response is returned and its progress events reach onProgress", async () => {
    const progress: OptimizerProgress[] = [];
    const request = smallRequest();
    const response = await runOptimizer({ command: fakeOptimizer("progress"), workDir, request, timeoutMs: 10_000, onProgress: (event) => progress.push(event) });
    expect(response.candidates.map((candidate) => candidate.id)).toEqual(["r1c1"]);
    expect(progress).toEqual([
      { done: 1, total: 2, message: "step 1" },
      { done: 2, total: 2, message: "step 2" },
    ]);
  });

  test("a response file that breaks the contract is not reused: the program runs again", async () => {
    const request = smallRequest("cycle-stale/train/1");
    await expect(runOptimizer({ command: fakeOptimizer("wrong-request-id"), workDir, request, timeoutMs: 10_000 })).rejects.toThrow(OptimizerError);
    const response = await runOptimizer({ command: fakeOptimizer("valid"), workDir, request, timeoutMs: 10_000 });
    expect(response.request_id).toBe(request.request_id);
  });

  test("a crash (exit 1 with a traceback) is retryable and carries the stderr tail", async () => {
    const error = await optimizerErrorOf(runOptimizer({ command: fakeOptimizer("crash"), workDir, request: smallRequest(), timeoutMs: 10_000 }));
    expect(error.kind).toBe("crashed");
    expect(error.retryable).toBe(true);
    expect(error.message).toContain("exit code 1");
    expect(error.message).toContain("Traceback");
    expect(error.message).toContain("RuntimeError: fake optimizer crashed on purpose");
  });

  test("a program killed by SIGKILL is a retryable crash", async () => {
    const error = await optimizerErrorOf(runOptimizer({ command: fakeOptimizer("sigkill"), workDir, request: smallRequest(), timeoutMs: 10_000 }));
    expect(error.kind).toBe("crashed");
    expect(error.retryable).toBe(true);
    expect(error.message).toContain("SIGKILL");
  });

  test("a program that cannot start is a crash that names the problem", async () => {
    const error = await optimizerErrorOf(runOptimizer({ command: [join(scratch, "no-such-python")], workDir, request: smallRequest(), timeoutMs: 10_000 }));
    expect(error.kind).toBe("crashed");
    expect(error.message).toContain("ENOENT");
  });

  test("exit 2 with an error line is bad input: not retryable, with the reason", async () => {
    const error = await optimizerErrorOf(runOptimizer({ command: fakeOptimizer("bad-input"), workDir, request: smallRequest(), timeoutMs: 10_000 }));
    expect(error.kind).toBe("bad-input");
    expect(error.retryable).toBe(false);
    expect(error.message).toBe("The optimizer refused its input: rollouts[0].reward must be a number, got 'high'");
  });

  test("a program that runs past timeoutMs is killed: timed-out, retryable, and the child is gone", async () => {
    const pidFile = join(scratch, `hang-${testNumber}.pid`);
    const started = Date.now();
    const error = await optimizerErrorOf(runOptimizer({ command: fakeOptimizer("hang", pidFile), workDir, request: smallRequest(), timeoutMs: 1_500 }));
    expect(error.kind).toBe("timed-out");
    expect(error.retryable).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(pid).toBeGreaterThan(0);
    expect(processExists(pid)).toBe(false);
  });

  test("cancellation through the signal kills the child: cancelled, not retryable", async () => {
    const pidFile = join(scratch, `cancel-${testNumber}.pid`);
    const controller = new AbortController();
    const running = runOptimizer({ command: fakeOptimizer("hang", pidFile), workDir, request: smallRequest(), timeoutMs: 60_000, signal: controller.signal });
    await waitForFile(pidFile);
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(processExists(pid)).toBe(true);
    controller.abort();
    const error = await optimizerErrorOf(running);
    expect(error.kind).toBe("cancelled");
    expect(error.retryable).toBe(false);
    expect(processExists(pid)).toBe(false);
  });

  test.each([
    ["not-json", "is not valid JSON"],
    ["missing-field", "rounds"],
    ["lost-placeholder", 'lost the placeholder {{categories}}'],
    ["same-as-incumbent", "identical to the incumbent prompt"],
    ["wrong-request-id", 'request_id is "someone-else"'],
    ["no-output", "wrote no response file"],
  ])("the %s FAKE optimizer breaks the contract: not retryable", async (mode, problem) => {
    const error = await optimizerErrorOf(runOptimizer({ command: fakeOptimizer(mode), workDir, request: smallRequest(), timeoutMs: 10_000 }));
    expect(error.kind).toBe("contract");
    expect(error.retryable).toBe(false);
    expect(error.message).toContain(problem);
  });

  test("a request that breaks the contract is refused before any program runs", async () => {
    const request = { ...smallRequest(), schema_version: 1 } as unknown as OptimizerRequest;
    await expect(runOptimizer({ command: fakeOptimizer("valid"), workDir, request, timeoutMs: 10_000 })).rejects.toThrow(/schema_version/);
    expect(existsSync(workDir)).toBe(false);
  });
});

describe("contractViolations", () => {
  const request = smallRequest("req-1");
  const incumbent = request.prompt.components;

  function response(candidates: Record<string, string>[], overrides: Partial<OptimizerResponse> = {}): OptimizerResponse {
    return {
      schema_version: OPTIMIZER_CONTRACT_VERSION,
      request_id: "req-1",
      algorithm: "llm-free",
      seed: 42,
      round: 1,
      candidates: candidates.map((components, index) => ({ id: `r1c${index + 1}`, parent: "incumbent", strategy: "test", components, rationale: "why", train_score: null })),
      rounds: [],
      stats: {},
      ...overrides,
    };
  }

  const edited = (patch: Record<string, string>) => ({ ...incumbent, ...patch });

  test("distinct candidates that keep every component and placeholder have no violations", () => {
    const first = edited({ instructions: `${incumbent.instructions}\nBe brief.` });
    const second = edited({ examples: 'Post: hello\nAnswer: {"category": "general", "sentiment": "neutral"}' });
    expect(contractViolations(request, response([first, second]))).toEqual([]);
  });

  test("an empty component may stay empty", () => {
    expect(incumbent.examples).toBe("");
    expect(contractViolations(request, response([edited({ categories: `${incumbent.categories}\n- general: weather too` })]))).toEqual([]);
  });

  test("an answer to another request", () => {
    const problems = contractViolations(request, response([edited({ instructions: `${incumbent.instructions}!` })], { request_id: "req-2" }));
    expect(problems).toEqual(['request_id is "req-2", expected "req-1"']);
  });

  test("duplicate candidate ids", () => {
    const answer = response([edited({ instructions: `${incumbent.instructions}!` }), edited({ instructions: `${incumbent.instructions}?` })]);
    answer.candidates[1]!.id = "r1c1";
    expect(contractViolations(request, answer)).toEqual(["candidates[1] (r1c1): duplicate id"]);
  });

  test("a missing or an extra component", () => {
    const { examples: _dropped, ...withoutExamples } = edited({ instructions: `${incumbent.instructions}!` });
    const problems = contractViolations(request, response([withoutExamples, edited({ instructions: `${incumbent.instructions}?`, extra: "x" })]));
    expect(problems).toHaveLength(2);
    expect(problems[0]).toBe("candidates[0] (r1c1): components are [categories, instructions, sentiments], expected [categories, examples, instructions, sentiments]");
    expect(problems[1]).toContain("candidates[1] (r1c2): components are [categories, examples, extra, instructions, sentiments]");
  });

  test("a component that became empty", () => {
    expect(contractViolations(request, response([edited({ sentiments: "  " })]))).toEqual(['candidates[0] (r1c1): component "sentiments" became empty']);
  });

  test("a lost placeholder, one problem per placeholder", () => {
    const problems = contractViolations(request, response([edited({ instructions: "Classify the post." })]));
    expect(problems).toEqual([
      'candidates[0] (r1c1): component "instructions" lost the placeholder {{categories}}',
      'candidates[0] (r1c1): component "instructions" lost the placeholder {{sentiments}}',
      'candidates[0] (r1c1): component "instructions" lost the placeholder {{examples}}',
    ]);
  });

  test("a candidate identical to the incumbent or to an earlier candidate", () => {
    const changed = edited({ instructions: `${incumbent.instructions}!` });
    const problems = contractViolations(request, response([{ ...incumbent }, changed, { ...changed }]));
    expect(problems).toEqual([
      "candidates[0] (r1c1): identical to its parent",
      "candidates[0] (r1c1): identical to the incumbent prompt",
      "candidates[2] (r1c3): identical to an earlier candidate",
    ]);
  });

  test("a candidate of another round, of a prompt that was not a parent, or an answer for another round", () => {
    const answer = response([edited({ instructions: `${incumbent.instructions}!` }), edited({ instructions: `${incumbent.instructions}?` })], { round: 2 });
    answer.candidates[0]!.id = "r2c1";
    answer.candidates[1]!.parent = "r7c7";
    expect(contractViolations(request, answer)).toEqual([
      "round is 2, expected 1",
      "candidates[0] (r2c1): id does not belong to round 1",
      'candidates[1] (r1c2): parent "r7c7" is not one of this round\'s parents',
    ]);
  });

  test("no candidates at all is within the contract", () => {
    expect(contractViolations(request, response([]))).toEqual([]);
  });
});

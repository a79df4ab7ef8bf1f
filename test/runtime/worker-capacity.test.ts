import { expect, test } from "vitest";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { configuredModel } from "../../agents/models/configured.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import type { AgentDefinition } from "../../agents/types.ts";
import { loadConfig } from "../../config/load.ts";
import { maxAgentBatches } from "../../runtime/worker.ts";

/** How many agent batches a worker takes at once (`worker.maxBatches`, else what its model can run). */
const capacity = (agents: readonly AgentDefinition[], env: Record<string, string>, overrides: Record<string, unknown> = {}) =>
  maxAgentBatches(loadConfig({ env, agents, overrides }));

/** The post analyzer with a model of its own instead of the configured one. */
const withOwnModel: AgentDefinition = {
  ...postAnalyzer,
  id: "own-model",
  prompt: { ...postAnalyzer.prompt, resource: "own-model" },
  runtime: { kind: "model", model: fakeKeywordModel(), tools: {}, maxSteps: 5 },
};

test("the local model runs one call at a time: a worker running it takes one batch at once", () => {
  expect(capacity([postAnalyzer], { AGL_MODEL: "local" })).toBe(1);
  expect(capacity([withOwnModel, postAnalyzer], {})).toBe(1);
});

test("a model elsewhere (an endpoint, the fake) leaves batches waiting on the network: many at once", () => {
  expect(capacity([postAnalyzer], { AGL_MODEL: "fake" })).toBe(64);
  expect(capacity([postAnalyzer], { OPENAI_BASE_URL: "http://127.0.0.1:9/v1" })).toBe(64);
  // The local model is configured, but every agent brings its own: the worker never runs it.
  expect(capacity([withOwnModel], { AGL_MODEL: "local" })).toBe(64);
});

test("worker.maxBatches (AGL_WORKER_MAX_BATCHES) says it outright, and is checked", () => {
  expect(capacity([postAnalyzer], { AGL_MODEL: "local", AGL_WORKER_MAX_BATCHES: "3" })).toBe(3);
  expect(capacity([postAnalyzer], { AGL_MODEL: "fake" }, { worker: { maxBatches: 2 } })).toBe(2);
  expect(() => capacity([postAnalyzer], { AGL_WORKER_MAX_BATCHES: "0" })).toThrow(/worker\.maxBatches.*AGL_WORKER_MAX_BATCHES/s);
});

// Last: configuredModel() marks the process for good, as an agent module of a project would.
test("an agent of your own given configuredModel() runs the local model too", () => {
  const mastraAgent = { generate: async () => ({}) };
  const own: AgentDefinition = { ...withOwnModel, id: "yours", prompt: { ...postAnalyzer.prompt, resource: "yours" }, runtime: { kind: "mastra", agent: mastraAgent, maxSteps: 5 } };
  expect(capacity([own], { AGL_MODEL: "local" })).toBe(64);
  configuredModel();
  expect(capacity([own], { AGL_MODEL: "local" })).toBe(1);
});

import { readFileSync } from "node:fs";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { createLiveAgentRunner } from "../../agents/live-runner.ts";
import { fakeKeywordModel } from "../../agents/models/fake-keyword.ts";
import { postAnalyzer } from "../../agents/post-analyzer/index.ts";
import { createPromptClient, type PromptClient } from "../../client/prompt-client.ts";
import { agentSpanRolloutKey } from "../../server/otlp/ingest.ts";
import type { PromptContent } from "../../store/schema.ts";
import { exportSpans, recordMastraRun, recordSpans } from "../support/otlp.ts";

interface Post {
  input: { content: string };
  expected: { category: string; sentiment: string };
}

/** The traffic: the first 60 posts of the bundled data set, over and over, each request from a new user. */
export const POSTS: Post[] = readFileSync(postAnalyzer.datasets.posts!, "utf8")
  .trim()
  .split("\n")
  .slice(0, 60)
  .map((line) => JSON.parse(line) as Post);

const SEED = postAnalyzer.prompt.seed;
/** Every post of the traffic as a demonstration: the fake model then answers each one right. */
export const GOOD_PROMPT: PromptContent = {
  engine: "placeholders",
  components: { ...SEED.components, examples: POSTS.map((post) => `Post: ${post.input.content}\nAnswer: ${JSON.stringify(post.expected)}`).join("\n\n") },
};
/** The category descriptions rotated: the fake model files most posts under the wrong category. */
export const WORSE_PROMPT: PromptContent = {
  engine: "placeholders",
  components: {
    ...SEED.components,
    categories: [
      "- technology: daily life, food, sport, travel or family",
      "- startups: software, hardware, AI, programming and gadgets",
      "- product_management: founding, funding and growing a young company",
      "- general: roadmaps, user research, priorities and shipping features",
    ].join("\n"),
  },
};

/**
 * An application serving users through the real stack: the prompt client (keyed by user, so the split
 * decides its arm), the live runner, its traces exported over OTLP to the server, and each user's thumbs
 * up or down (the category right or wrong) posted as feedback.
 */
export function liveTraffic(serverUrl: string, cacheDir: string) {
  const client: PromptClient = createPromptClient({ baseUrl: serverUrl, cacheDir, ttlMs: 60_000 });
  const run = createLiveAgentRunner(postAnalyzer, client, { model: fakeKeywordModel() });
  const exporter = new OTLPTraceExporter({ url: `${serverUrl}/v1/traces` });
  let sent = 0;
  const served: { arm: string | null; version: number; right: boolean }[] = [];

  /** `count` more requests, exported and rated in one batch. */
  async function send(count: number): Promise<void> {
    const rated: { rolloutId: string; right: boolean }[] = [];
    const spans = [];
    for (let index = 0; index < count; index++, sent++) {
      const post = POSTS[sent % POSTS.length]!;
      const result = await run(post.input, { key: `user-${sent}` });
      const right = (result.output as { category?: string } | null)?.category === post.expected.category;
      served.push({ arm: result.prompt.arm, version: result.prompt.version, right });
      spans.push(
        ...recordSpans({ "service.name": "e2e-app" }, (tracer) => {
          const agentSpan = recordMastraRun(tracer, {
            userMessage: postAnalyzer.message(post.input),
            answer: result.output ?? {},
            latencyMs: 40,
            metadata: { "mastra.metadata.promptVersion": result.prompt.version, "mastra.metadata.promptArm": result.prompt.arm ?? "" },
          });
          const { traceId, spanId } = agentSpan.spanContext();
          rated.push({ rolloutId: agentSpanRolloutKey(traceId, spanId), right });
        }),
      );
    }
    const exported = await exportSpans(exporter, spans);
    if (exported.code !== 0) throw new Error(`OTLP export failed: ${exported.error?.message}`);
    for (const { rolloutId, right } of rated) {
      const response = await fetch(`${serverUrl}/v1/feedback`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ rolloutId, thumbs: right ? "up" : "down", feedbackId: `fb-${rolloutId}`, user: "e2e" }),
      });
      if (response.status !== 201) throw new Error(`feedback on ${rolloutId} answered ${response.status}: ${await response.text()}`);
    }
  }

  return {
    send,
    served,
    get sent() {
      return sent;
    },
    async close() {
      client.close();
      await exporter.shutdown();
    },
  };
}

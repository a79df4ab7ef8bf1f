import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";

/** One reflection request as the FAKE endpoint saw it: the component asked for, its current text, the whole prompt. */
export interface ReflectionRequest {
  component: string;
  current: string;
  prompt: string;
}

export interface FakeReflection {
  /** The OpenAI-compatible base URL (`…/v1`) for `optimizer.llm.baseUrl`. */
  baseUrl: string;
  /** Every request received, in order, whether answered yet or not. */
  requests: ReflectionRequest[];
  /** Keeps the answer to the `count`th request (1-based) until `release()`; the promise settles when that request has arrived. */
  holdRequest(count: number): Promise<void>;
  release(): void;
  close(): Promise<void>;
}

/** What the reflection prompt of python/agl_optimizer/gepa.py quotes: `The part "<name>" … reads now:` and the text in `"""`. */
const QUOTED_PART = /The part "([^"]+)" of the agent's instructions reads now:\n"""\n([\s\S]*?)\n"""\n/;

/**
 * A FAKE reflection model: an OpenAI-compatible chat endpoint that answers each GEPA reflection with
 * `rewrite(component, current text)`, inside ``` fences after a line of commentary, as a model following
 * GEPA's prompt would. Deterministic: the answer depends on the request only. It can hold one answer back,
 * so a test knows a reflection is in flight when it kills a worker.
 */
export async function startFakeReflection(rewrite: (component: string, current: string) => string): Promise<FakeReflection> {
  const requests: ReflectionRequest[] = [];
  let held: { count: number; arrived: () => void } | undefined;
  let gate: Promise<void> | undefined;
  let open: () => void = () => {};
  const server = createServer(async (request, response) => {
    const body = JSON.parse(await readBody(request)) as { messages: { role: string; content: string }[] };
    const prompt = body.messages.find((message) => message.role === "user")?.content ?? "";
    const [, component = "", current = ""] = QUOTED_PART.exec(prompt) ?? [];
    requests.push({ component, current, prompt });
    if (held && requests.length === held.count) {
      held.arrived();
      await gate;
    }
    const content = `Here is the improved part.\n\`\`\`\n${rewrite(component, current)}\n\`\`\``;
    response.writeHead(200, { "content-type": "application/json" });
    response.end(
      JSON.stringify({
        id: `chatcmpl-fake-${requests.length}`,
        object: "chat.completion",
        created: 1,
        model: "fake-reflection",
        choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
        usage: { prompt_tokens: 100, completion_tokens: 50, total_tokens: 150 },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    requests,
    holdRequest(count) {
      gate = new Promise((resolve) => (open = resolve));
      return new Promise((resolve) => (held = { count, arrived: resolve }));
    },
    release: () => open(),
    close() {
      open();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

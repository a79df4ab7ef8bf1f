// Spans in, rollouts and rewards out. A Mastra agent span (either shape Mastra has emitted) becomes a
// rollout; Agent Lightning's rollout id, when a span carries one, groups spans into that rollout instead;
// reward annotation spans become rewards.
//
// Spans arrive in any order, in any number of requests: OTel exporters send a child before its parent all
// the time (the child ends first), and a parent may come in a later batch. So a rollout is never built from
// the spans of one request: every ingest rebuilds each rollout its new spans belong to from all of that
// rollout's spans stored so far, and replaces the stored version. The stored rollout is therefore a function
// of the set of spans received, whatever the order and batching. Concurrent requests are written in
// batches (group commit): one transaction for whatever arrived while the previous one ran.
import { createHash } from "node:crypto";
import type { AgentRegistry } from "../../agents/registry.ts";
import type { AgentDefinition } from "../../agents/types.ts";
import type { Store } from "../../store/index.ts";
import type { NewRollout, Reward } from "../../store/rollouts.ts";
import type { AttributeValue, SpanIngestPlan, SpanRecord } from "../../store/traces.ts";
import {
  AGENT_LIGHTNING,
  AGL_PROMPT,
  ERROR_MESSAGE,
  GEN_AI,
  INVOKE_AGENT,
  LLM,
  MASTRA,
  MASTRA_LEGACY,
  MODEL_CALL_OPERATIONS,
  PROMPT_METADATA,
  SERVICE_NAME,
  STATUS_ERROR,
} from "./semconv.ts";

const AGENT_LIGHTNING_SCORER = "agentlightning";

/** Latency, token counts and versions are `integer` columns. */
const INT4_MAX = 2_147_483_647;

/**
 * A transaction starts while another runs only for at least this many spans: a small batch costs mostly its
 * round trips and statements, so it waits and goes with whatever else queued (README, "Benchmarks → OTLP
 * ingest": overlapping them raised the CPU per span by 10 % at one span a request).
 */
const MIN_OVERLAPPING_BATCH_SPANS = 256;

/** Spans written in one group-commit transaction at most; a single larger request still goes alone. */
const MAX_BATCH_SPANS = 8_192;

export interface IngestOutcome {
  /** Spans refused, with the reason; nothing else of the request is affected. */
  rejected: string[];
  /** Things the sender may want to know about spans that were stored. */
  warnings: string[];
}

interface RewardDimension {
  name: string;
  value: number;
}

interface ClassifiedSpan {
  span: SpanRecord;
  role: "agent" | "model" | "other";
  aglRolloutId: string | null;
  /** Null unless the span is a reward annotation. */
  rewards: RewardDimension[] | null;
}

/** A warning and the spans it concerns: a request is told the warnings about the spans it sent. */
interface Warning {
  spanKeys: string[];
  message: string;
}

interface PendingRequest {
  incoming: ClassifiedSpan[];
  rejected: string[];
  settle: { resolve: (outcome: IngestOutcome) => void; reject: (error: unknown) => void };
}

/**
 * Stores the spans of one OTLP request and what they make (rollouts, rewards), and resolves once that is
 * committed: an exporter answered 200 has lost nothing. Requests that arrive while a transaction runs wait
 * and go together in the next one.
 */
export function ingestSpans(store: Store, spans: readonly SpanRecord[], agents: AgentRegistry): Promise<IngestOutcome> {
  const rejected: string[] = [];
  const incoming: ClassifiedSpan[] = [];
  const seen = new Set<string>();
  for (const span of spans) {
    const key = keyOf(span);
    if (seen.has(key)) continue;
    seen.add(key);
    const classified = classify(span);
    if (typeof classified === "string") rejected.push(`span ${span.spanId} (${span.name}) of trace ${span.traceId}: ${classified}`);
    else incoming.push(classified);
  }
  if (incoming.length === 0) return Promise.resolve({ rejected, warnings: [] });
  return new Promise((resolve, reject) => committerFor(store, agents).submit({ incoming, rejected, settle: { resolve, reject } }));
}

/** One committer per store and agent registry (a batch is read with one registry). */
const committers = new WeakMap<Store, WeakMap<AgentRegistry, GroupCommitter>>();

function committerFor(store: Store, agents: AgentRegistry): GroupCommitter {
  let byRegistry = committers.get(store);
  if (!byRegistry) {
    byRegistry = new WeakMap();
    committers.set(store, byRegistry);
  }
  let committer = byRegistry.get(agents);
  if (!committer) {
    committer = new GroupCommitter(store, agents);
    byRegistry.set(agents, committer);
  }
  return committer;
}

/**
 * As many ingest transactions at a time per store as the store runs well at once (`concurrentIngests`),
 * the second only for a large batch; whatever queued meanwhile goes in the next. Transactions that touch
 * the same trace or rollout still take turns, on their locks.
 */
class GroupCommitter {
  private readonly store: Store;
  private readonly agents: AgentRegistry;
  private readonly queue: PendingRequest[] = [];
  private running = 0;
  /** One until the store has said how many it runs well at once. */
  private slots = 1;
  private asked = false;

  constructor(store: Store, agents: AgentRegistry) {
    this.store = store;
    this.agents = agents;
  }

  submit(request: PendingRequest): void {
    this.queue.push(request);
    if (!this.asked) {
      this.asked = true;
      void this.store.traces.concurrentIngests().then((slots) => {
        this.slots = slots;
        this.startBatches();
      });
    }
    this.startBatches();
  }

  private startBatches(): void {
    while (this.queue.length > 0 && (this.running === 0 || (this.running < this.slots && this.queuedSpans() >= MIN_OVERLAPPING_BATCH_SPANS))) {
      let size = 0;
      let count = 0;
      while (count < this.queue.length && (count === 0 || size + this.queue[count]!.incoming.length <= MAX_BATCH_SPANS)) size += this.queue[count++]!.incoming.length;
      this.running++;
      void this.run(this.queue.splice(0, count)).finally(() => {
        this.running--;
        this.startBatches();
      });
    }
  }

  private queuedSpans(): number {
    return this.queue.reduce((total, request) => total + request.incoming.length, 0);
  }

  private async run(batch: readonly PendingRequest[]): Promise<void> {
    try {
      this.settle(batch, await this.commit(batch));
    } catch (error) {
      // One bad request must not fail the others it was batched with: each is tried alone.
      if (batch.length === 1) batch[0]!.settle.reject(error);
      else for (const request of batch) await this.commit([request]).then((warnings) => this.settle([request], warnings), request.settle.reject);
    }
  }

  private async commit(batch: readonly PendingRequest[]): Promise<Warning[]> {
    const incoming = new Map<string, ClassifiedSpan>();
    for (const request of batch) for (const item of request.incoming) if (!incoming.has(keyOf(item.span))) incoming.set(keyOf(item.span), item);
    const items = [...incoming.values()];
    const context = {
      traceIds: [...new Set(items.map((item) => item.span.traceId))],
      rolloutIds: [...new Set(items.flatMap((item) => (item.aglRolloutId ? [aglRolloutKey(item.aglRolloutId)] : [])))],
    };
    const { plan } = await this.store.traces.ingest(context, (stored, readRollouts) => planIngest(items, stored, readRollouts, this.agents));
    return plan.warnings;
  }

  private settle(batch: readonly PendingRequest[], warnings: readonly Warning[]): void {
    for (const request of batch) {
      if (warnings.length === 0) {
        request.settle.resolve({ rejected: request.rejected, warnings: [] });
        continue;
      }
      const keys = new Set(request.incoming.map((item) => keyOf(item.span)));
      const mine = warnings.filter((warning) => warning.spanKeys.some((key) => keys.has(key))).map((warning) => warning.message);
      request.settle.resolve({ rejected: request.rejected, warnings: mine });
    }
  }
}

/** The rollout id of spans that carry Agent Lightning's `ro-…` id: prefixed, so a reader sees where it came from. */
function aglRolloutKey(aglRolloutId: string): string {
  return `ro-agl-${aglRolloutId.replace(/^ro-/, "")}`;
}

/** The rollout of an agent span without a rollout id: derived from its ids, so a re-sent span maps to the same rollout. */
export function agentSpanRolloutKey(traceId: string, spanId: string): string {
  return `ro-${createHash("sha256").update(`otlp\u0000${traceId}\u0000${spanId}`).digest("hex").slice(0, 24)}`;
}

function keyOf(span: { traceId: string; spanId: string }): string {
  return `${span.traceId}/${span.spanId}`;
}
function classify(span: SpanRecord): ClassifiedSpan | string {
  const rewards = rewardDimensions(span);
  if (typeof rewards === "string") return rewards;
  const aglRolloutId = text(span.attributes[AGENT_LIGHTNING.rolloutId]) ?? text(span.resource[AGENT_LIGHTNING.rolloutId]);
  return { span, role: roleOf(span), aglRolloutId, rewards };
}

function roleOf(span: SpanRecord): ClassifiedSpan["role"] {
  const operation = text(span.attributes[GEN_AI.operationName]);
  if (
    operation === INVOKE_AGENT ||
    operation === MASTRA_LEGACY.agentRunOperation ||
    span.attributes[MASTRA.spanType] === MASTRA.agentRunSpanType ||
    span.name.startsWith(`${INVOKE_AGENT} `) ||
    span.name.startsWith(MASTRA_LEGACY.agentSpanPrefix)
  ) {
    return "agent";
  }
  if (
    (operation !== null && MODEL_CALL_OPERATIONS.includes(operation)) ||
    MODEL_CALL_OPERATIONS.some((name) => span.name.startsWith(`${name} `)) ||
    span.name === LLM.spanPrefix ||
    /^llm[.: ]/.test(span.name) ||
    span.attributes[LLM.modelName] !== undefined
  ) {
    return "model";
  }
  return "other";
}

/** The reward dimensions of an annotation span, null for any other span, or why the span is refused. */
function rewardDimensions(span: SpanRecord): RewardDimension[] | null | string {
  const byIndex = new Map<number, { name?: AttributeValue; value?: AttributeValue }>();
  for (const [key, value] of Object.entries(span.attributes)) {
    const match = /^(\d+)\.(name|value)$/.exec(key.startsWith(AGENT_LIGHTNING.rewardPrefix) ? key.slice(AGENT_LIGHTNING.rewardPrefix.length) : "");
    if (!match) continue;
    const entry = byIndex.get(Number(match[1])) ?? {};
    entry[match[2] as "name" | "value"] = value;
    byIndex.set(Number(match[1]), entry);
  }
  let dimensions: { name: string; value: AttributeValue | undefined }[];
  if (byIndex.size > 0) {
    dimensions = [...byIndex].sort(([a], [b]) => a - b).map(([index, entry]) => ({ name: text(entry.name) ?? `dimension ${index}`, value: entry.value }));
  } else if (span.name === AGENT_LIGHTNING.annotationSpan && span.attributes[AGENT_LIGHTNING.legacyReward] !== undefined) {
    dimensions = [{ name: "primary", value: span.attributes[AGENT_LIGHTNING.legacyReward] }];
  } else {
    const agentOps = AGENT_LIGHTNING.agentOpsOutputs.map((key) => parseJsonText(span.attributes[key])).find((output) => isRecord(output) && output.type === "reward");
    if (!isRecord(agentOps) || agentOps.value === null || agentOps.value === undefined) return null;
    dimensions = [{ name: "primary", value: agentOps.value as AttributeValue }];
  }
  for (const dimension of dimensions) {
    if (typeof dimension.value !== "number" || !Number.isFinite(dimension.value)) {
      return `reward "${dimension.name}" is ${JSON.stringify(dimension.value ?? null)}, not a number`;
    }
    if (dimension.value < -1 || dimension.value > 1) {
      return `reward "${dimension.name}" is ${dimension.value}, outside [-1, 1]; scale rewards into that range before emitting them`;
    }
  }
  return dimensions as RewardDimension[];
}

interface Node extends ClassifiedSpan {
  isNew: boolean;
  rolloutId: string | null;
}

/** Orders spans by start, then span id: every choice below ("the first agent span", "the last model call") is then independent of arrival order. */
function byStart(a: Node, b: Node): number {
  return a.span.start.getTime() - b.span.start.getTime() || (a.span.spanId < b.span.spanId ? -1 : a.span.spanId > b.span.spanId ? 1 : 0);
}

/** `readRollouts`: the Agent Lightning rollouts whose stored spans `stored` holds (besides whole traces). */
function planIngest(incoming: readonly ClassifiedSpan[], stored: readonly SpanRecord[], readRollouts: ReadonlySet<string>, agents: AgentRegistry): SpanIngestPlan & { warnings: Warning[] } {
  const nodes = new Map<string, Node>();
  for (const span of stored) {
    const classified = classify(span);
    if (typeof classified !== "string") nodes.set(keyOf(span), { ...classified, isNew: false, rolloutId: null });
  }
  for (const item of incoming) if (!nodes.has(keyOf(item.span))) nodes.set(keyOf(item.span), { ...item, isNew: true, rolloutId: null });

  // A span belongs to the rollout of the nearest span at or above it that names an Agent Lightning rollout or
  // is an agent span. While a span between it and that one is missing, it belongs to none yet; once the chain
  // is complete the answer never changes, so a span is linked at most once.
  // Each span's answer is kept (`resolved`), so a trace costs one walk per span at most, and one hash per agent span.
  const resolved = new Map<Node, string | null>();
  const rolloutOf = (node: Node): string | null => {
    const path: Node[] = [];
    let answer: string | null = null;
    for (let current: Node | undefined = node; current && path.length < 10_000; ) {
      const known = resolved.get(current);
      if (known !== undefined) {
        answer = known;
        break;
      }
      path.push(current);
      if (current.aglRolloutId) {
        answer = aglRolloutKey(current.aglRolloutId);
        break;
      }
      if (current.role === "agent") {
        answer = agentSpanRolloutKey(current.span.traceId, current.span.spanId);
        break;
      }
      current = current.span.parentSpanId ? nodes.get(`${current.span.traceId}/${current.span.parentSpanId}`) : undefined;
    }
    for (const visited of path) resolved.set(visited, answer);
    return answer;
  };
  for (const node of nodes.values()) node.rolloutId = rolloutOf(node);

  const plan: SpanIngestPlan & { warnings: Warning[] } = { spans: [], links: [], rollouts: [], rewards: [], unreadRollouts: [], warnings: [] };
  const groups = Map.groupBy(
    [...nodes.values()].filter((node) => node.rolloutId !== null),
    (node) => node.rolloutId!,
  );
  for (const [rolloutId, members] of groups) {
    // Only agent spans, model calls and reward annotations shape a rollout: it is rebuilt when one of those
    // joins it (arrives, or is linked by a span that completed its chain), and is unchanged otherwise.
    const joined = members.filter((member) => (member.isNew || member.span.rolloutId === null) && (member.role !== "other" || member.rewards !== null));
    if (joined.length === 0) continue;
    // A Mastra group lies within one trace, read whole; an Agent Lightning rollout may span traces.
    if (members.some((member) => member.aglRolloutId !== null) && !readRollouts.has(rolloutId)) {
      plan.unreadRollouts.push(rolloutId);
      continue;
    }
    const newKeys = members.filter((member) => member.isNew).map((member) => keyOf(member.span));
    members.sort(byStart);
    const built = buildRollout(rolloutId, members, agents);
    plan.warnings.push(...built.warnings.map((message) => ({ spanKeys: newKeys, message })));
    if (!built.rollout) continue;
    plan.rollouts.push(built.rollout);
    for (const member of members) {
      member.rewards?.forEach((dimension, index) => plan.rewards.push(rewardOf(rolloutId, member, dimension, index)));
    }
  }
  for (const node of nodes.values()) {
    if (node.isNew) plan.spans.push({ ...node.span, rolloutId: node.rolloutId });
    else if (node.rolloutId && node.span.rolloutId === null) plan.links.push({ traceId: node.span.traceId, spanId: node.span.spanId, rolloutId: node.rolloutId });
    if (node.isNew && node.rewards && !node.rolloutId) {
      plan.warnings.push({
        spanKeys: [keyOf(node.span)],
        message: `span ${node.span.spanId} of trace ${node.span.traceId} is a reward annotation without ${AGENT_LIGHTNING.rolloutId} and no agent span above it yet: stored, it becomes a reward when its rollout's spans arrive`,
      });
    }
  }
  return plan;
}

/**
 * The rollout of a group, from all of its spans in start order: its agent span, when it has come, decides
 * the agent, input, output, status, latency and prompt; the model calls add model names and tokens. An Agent
 * Lightning group without an agent span is made from its model calls alone until the agent span comes.
 * No rollout while a group has neither (only annotations so far).
 */
function buildRollout(rolloutId: string, members: readonly Node[], agents: AgentRegistry): { rollout: NewRollout | null; warnings: string[] } {
  const models = members.filter((member) => member.role === "model");
  // A Mastra group has one agent span (a nested agent's spans form a group of their own); an Agent Lightning
  // group's first agent span is the outermost.
  const main = members.find((member) => member.role === "agent");
  const source = main ?? models[0];
  if (!source) return { rollout: null, warnings: [] };

  const warnings: string[] = [];
  const agentName = main ? agentNameOf(main.span) : (text(source.span.attributes[GEN_AI.agentName]) ?? text(source.span.resource[SERVICE_NAME]) ?? "unknown");
  const rawInput = main ? (main.span.attributes[MASTRA.agentRunInput] ?? main.span.attributes[MASTRA_LEGACY.input]) : (source.span.attributes[GEN_AI.inputMessages] ?? source.span.attributes[MASTRA_LEGACY.prompt]);
  const lastModel = models.at(-1);
  const rawOutput = main
    ? (main.span.attributes[MASTRA.agentRunOutput] ?? main.span.attributes[MASTRA_LEGACY.output])
    : (lastModel?.span.attributes[GEN_AI.outputMessages] ?? lastModel?.span.attributes[MASTRA_LEGACY.completion]);
  const run = interpretAgentRun(agents, [agentName, text(source.span.attributes[GEN_AI.agentId])], rawInput, rawOutput);
  const failedSpan = (main ? [main] : models).find((member) => member.span.statusCode === STATUS_ERROR);
  const error = failedSpan
    ? (failedSpan.span.statusMessage ?? text(failedSpan.span.attributes[ERROR_MESSAGE]) ?? `span ${failedSpan.span.name} ended with an error`)
    : run.error;

  const prompt = promptOf(source.span, run.promptResource ?? agentName, warnings);
  const start = main ? main.span.start.getTime() : Math.min(...models.map((member) => member.span.start.getTime()));
  const end = main ? main.span.end.getTime() : Math.max(...models.map((member) => member.span.end.getTime()));
  if (end - start > INT4_MAX) {
    return { rollout: null, warnings: [`span ${source.span.spanId} of trace ${source.span.traceId}: a run of ${end - start} ms is longer than a rollout can record (24 days); stored as spans only`] };
  }
  const modelNames = [...new Set(models.flatMap((member) => modelNameOf(member.span) ?? []))];
  return {
    rollout: {
      id: rolloutId,
      agent: run.agent ?? agentName,
      source: "otlp",
      dataset: null,
      taskId: null,
      resourceName: prompt.resource,
      resourceVersion: prompt.version,
      arm: prompt.arm,
      candidateId: null,
      cycleId: null,
      phase: null,
      input: run.input,
      output: run.output,
      status: error ? "failed" : "succeeded",
      error,
      latencyMs: end - start,
      model: modelNames.length > 0 ? modelNames.join(", ") : null,
      inputTokens: tokenSum(models, [GEN_AI.inputTokens, MASTRA_LEGACY.promptTokens, LLM.promptTokens], warnings),
      outputTokens: tokenSum(models, [GEN_AI.outputTokens, MASTRA_LEGACY.completionTokens, LLM.completionTokens], warnings),
      traceId: source.span.traceId,
      instructions: text(main?.span.attributes[GEN_AI.systemInstructions]) ?? models.map((member) => text(member.span.attributes[GEN_AI.systemInstructions])).find(Boolean) ?? null,
    },
    warnings,
  };
}

function agentNameOf(span: SpanRecord): string {
  return (
    text(span.attributes[GEN_AI.agentName]) ??
    text(span.attributes[GEN_AI.agentId]) ??
    text(span.attributes[MASTRA_LEGACY.agentId]) ??
    (span.name.startsWith(`${INVOKE_AGENT} `) ? span.name.slice(INVOKE_AGENT.length + 1) : span.name.startsWith(MASTRA_LEGACY.agentSpanPrefix) ? span.name.slice(MASTRA_LEGACY.agentSpanPrefix.length) : span.name)
  );
}

/** The prompt resource, version and split arm the run used: trace metadata first (`mastra.metadata.*`, unprefixed in the older shape), then the agl.prompt.* attributes of the span or its resource. */
function promptOf(span: SpanRecord, defaultResource: string, warnings: string[]): { resource: string; version: number | null; arm: string | null } {
  const lookup = (metadataKey: string, attribute: string) =>
    span.attributes[`${MASTRA.metadataPrefix}${metadataKey}`] ?? span.attributes[metadataKey] ?? span.attributes[attribute] ?? span.resource[attribute];
  const resource = text(lookup(PROMPT_METADATA.resource, AGL_PROMPT.resource)) ?? defaultResource;
  const rawArm = lookup(PROMPT_METADATA.arm, AGL_PROMPT.arm);
  const arm = rawArm === "production" || rawArm === "canary" ? rawArm : null;
  if (rawArm !== undefined && rawArm !== null && arm === null) warnings.push(`span ${span.spanId} of trace ${span.traceId}: prompt arm ${JSON.stringify(rawArm)} is neither "production" nor "canary"; its rollout records no arm`);
  const rawVersion = lookup(PROMPT_METADATA.version, AGL_PROMPT.version);
  const version = typeof rawVersion === "number" ? rawVersion : typeof rawVersion === "string" && /^\d+$/.test(rawVersion) ? Number(rawVersion) : null;
  if (rawVersion !== undefined && rawVersion !== null && (version === null || !Number.isInteger(version) || version < 1 || version > INT4_MAX)) {
    warnings.push(`span ${span.spanId} of trace ${span.traceId}: prompt version ${JSON.stringify(rawVersion)} is not a positive whole number; its rollout records no version`);
    return { resource, version: null, arm: null };
  }
  return { resource, version, arm };
}

function modelNameOf(span: SpanRecord): string | null {
  const model = text(span.attributes[GEN_AI.requestModel]) ?? text(span.attributes[GEN_AI.responseModel]) ?? text(span.attributes[LLM.modelName]);
  const provider = text(span.attributes[GEN_AI.providerName]) ?? text(span.attributes[MASTRA_LEGACY.system]) ?? text(span.attributes[LLM.provider]);
  if (!model) return null;
  return provider ? `${provider}/${model}` : model;
}

function tokenSum(models: Node[], keys: readonly string[], warnings: string[]): number | null {
  const counts = models.flatMap((member) => {
    const value = keys.map((key) => member.span.attributes[key]).find((candidate) => typeof candidate === "number");
    return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? [value] : [];
  });
  if (counts.length === 0) return null;
  const sum = counts.reduce((total, count) => total + count, 0);
  if (sum <= INT4_MAX) return sum;
  warnings.push(`trace ${models[0]!.span.traceId}: ${sum} tokens (${keys[0]}) is more than a rollout can record; stored without a token count`);
  return null;
}

interface InterpretedRun {
  /** The registered agent's id, or null when the run names no registered agent. */
  agent: string | null;
  /** The registered agent's prompt resource, the default when the spans name none. */
  promptResource: string | null;
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
  /** Why the run counts as failed although its spans did not say so, or null. */
  error: string | null;
}

/**
 * The one place ingest reads the agent registry: finds the registered agent the run names (the first name
 * that is one) and reads the run's input and output as that agent's. The input is put back into the
 * agent's input schema so it can be replayed: the user message read back through the agent's `message`
 * (an input whose only required field is text, e.g. `Post: {content}`), or parsed as the JSON input (the
 * default message of other inputs); otherwise the user text. The output: checked against its output
 * schema, as Mastra's `{text, object}`, the object alone, or JSON in the text; an agent that answers in
 * text keeps the text. Without a registered agent: the user text and the structured object (else the
 * text) as they came.
 */
function interpretAgentRun(agents: AgentRegistry, names: readonly (string | null)[], rawInput: AttributeValue | undefined, rawOutput: AttributeValue | undefined): InterpretedRun {
  const definition = names.flatMap((name) => (name ? [agents.find(name)] : [])).find((found) => found !== undefined);
  const parsedInput = parseJsonText(rawInput);
  const userText = messageText(parsedInput, "user");
  const output = readOutput(rawOutput);
  const asGiven = { input: userText !== null ? { text: userText } : isRecord(parsedInput) ? parsedInput : parsedInput === undefined ? {} : { value: parsedInput }, output: output.value, error: output.error };
  if (!definition) return { agent: null, promptResource: null, ...asGiven };

  const identity = { agent: definition.id, promptResource: definition.prompt.resource, input: (userText !== null ? inputOf(definition, userText) : null) ?? asGiven.input };
  if (output.error || output.value === null) return { ...identity, output: output.value, error: output.error };
  if (!definition.outputSchema) {
    return output.text !== null ? { ...identity, output: { text: output.text }, error: null } : { ...identity, output: output.value, error: "the agent answers in text, and the span holds no text answer" };
  }
  const schema = definition.outputSchema;
  const checks = output.candidates.map((candidate) => schema.safeParse(candidate));
  const valid = checks.find((check) => check.success);
  if (valid?.success) return { ...identity, output: valid.data as Record<string, unknown>, error: null };
  const problems = checks[0]!.error!.issues.map((issue) => `${issue.path.join(".") || "(output)"}: ${issue.message}`).join("; ");
  return { ...identity, output: output.value, error: `output does not match the agent's schema: ${problems}` };
}

/** The user text as the agent's input (see interpretAgentRun), or null when it is not one. */
function inputOf(definition: AgentDefinition, userText: string): Record<string, unknown> | null {
  const textField = onlyTextField(definition);
  if (textField) {
    const marker = "\u0000agl-input\u0000";
    const template = definition.message({ [textField]: marker });
    const at = template.indexOf(marker);
    const prefix = template.slice(0, at);
    const suffix = template.slice(at + marker.length);
    if (at >= 0 && userText.length >= prefix.length + suffix.length && userText.startsWith(prefix) && userText.endsWith(suffix)) {
      const structured = definition.inputSchema.safeParse({ [textField]: userText.slice(prefix.length, userText.length - suffix.length) });
      if (structured.success) return structured.data;
    }
  }
  const structured = definition.inputSchema.safeParse(parseJsonText(userText));
  return structured.success ? (structured.data as Record<string, unknown>) : null;
}

/** The input field a user message can be read back into: the only required field, when it is a string. */
function onlyTextField(definition: AgentDefinition): string | undefined {
  const required = Object.entries(definition.inputSchema.shape).filter(([, field]) => !(field as { isOptional?: () => boolean }).isOptional?.());
  const [only] = required;
  return required.length === 1 && (only![1] as { _zod?: { def?: { type?: string } } })._zod?.def?.type === "string" ? only![0] : undefined;
}

/**
 * The agent span's output as it came: the value to store when no schema applies, its text answer, the
 * structured values a schema may accept (Mastra's `object`, JSON in the text, the bare object), or the
 * reason the run ended.
 */
function readOutput(raw: AttributeValue | undefined): { value: Record<string, unknown> | null; text: string | null; candidates: unknown[]; error: string | null } {
  const parsed = parseJsonText(raw);
  if (parsed === undefined || parsed === null) return { value: null, text: null, candidates: [], error: null };
  if (isRecord(parsed) && (parsed.status === "aborted" || parsed.status === "suspended") && !("text" in parsed)) {
    return { value: null, text: null, candidates: [], error: `the run was ${parsed.status}${typeof parsed.reason === "string" ? `: ${parsed.reason}` : ""}` };
  }
  const textOut = messageText(parsed, "assistant");
  const object = isRecord(parsed) && isRecord(parsed.object) ? parsed.object : undefined;
  const value = object ?? (textOut !== null ? { text: textOut } : isRecord(parsed) ? parsed : { value: parsed });
  const candidates = object ? [object] : textOut !== null ? [parseJsonText(textOut), ...(isRecord(parsed) ? [parsed] : [])] : [parsed];
  return { value, text: textOut, candidates, error: null };
}

/** The text of the last message with the role, from a plain string, a message list (Mastra or GenAI parts), `{messages}` or `{text}`. */
function messageText(value: unknown, role: "user" | "assistant"): string | null {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const message = value.findLast((item) => isRecord(item) && item.role === role);
    return isRecord(message) ? contentText(message.content ?? message.parts) : null;
  }
  if (isRecord(value)) {
    if (value.messages !== undefined) return messageText(value.messages, role);
    if (typeof value.text === "string") return value.text;
  }
  return null;
}

function contentText(content: unknown): string | null {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return null;
  const parts = content.flatMap((part) => (isRecord(part) && part.type === "text" ? [String(part.text ?? part.content ?? "")] : []));
  return parts.length > 0 ? parts.join("") : null;
}

function rewardOf(rolloutId: string, node: Node, dimension: RewardDimension, index: number): Omit<Reward, "createdAt"> {
  const attemptId = text(node.span.attributes[AGENT_LIGHTNING.attemptId]) ?? text(node.span.resource[AGENT_LIGHTNING.attemptId]);
  return {
    rolloutId,
    scorer: index === 0 ? AGENT_LIGHTNING_SCORER : `${AGENT_LIGHTNING_SCORER}.${dimension.name}`,
    value: dimension.value,
    reason: node.span.statusMessage ?? `reward annotation span ${node.span.name}${index === 0 ? "" : ` (${dimension.name})`}`,
    details: {
      traceId: node.span.traceId,
      spanId: node.span.spanId,
      dimension: dimension.name,
      ...(node.aglRolloutId ? { agentLightningRolloutId: node.aglRolloutId } : {}),
      ...(attemptId ? { agentLightningAttemptId: attemptId } : {}),
    },
    dedupeKey: node.span.spanId,
  };
}

/** JSON in a string attribute (Mastra serializes inputs and outputs), or the value itself. */
function parseJsonText(value: AttributeValue | undefined): unknown {
  if (typeof value !== "string") return value;
  const trimmed = value.trimStart();
  if (!trimmed.startsWith("{") && !trimmed.startsWith("[") && !trimmed.startsWith('"')) return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function text(value: AttributeValue | undefined): string | null {
  return typeof value === "string" && value.length > 0 ? value : null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// Spans in, rollouts and rewards out. A Mastra agent span (either shape Mastra has emitted) becomes a
// rollout; Agent Lightning's rollout id, when a span carries one, groups spans into that rollout instead;
// reward annotation spans become rewards. Spans may arrive in any order and in any number of requests:
// each request is planned against the spans of the same traces and rollouts stored before it.
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

/** Classifies the request's spans, then plans and stores everything in one transaction. */
export async function ingestSpans(store: Store, spans: readonly SpanRecord[], agents: AgentRegistry): Promise<IngestOutcome> {
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
  if (incoming.length === 0) return { rejected, warnings: [] };
  const context = {
    traceIds: [...new Set(incoming.map((item) => item.span.traceId))],
    rolloutIds: [...new Set(incoming.flatMap((item) => (item.aglRolloutId ? [aglRolloutKey(item.aglRolloutId)] : [])))],
  };
  const { plan } = await store.traces.ingest(context, (stored) => planIngest(incoming, stored, agents));
  return { rejected, warnings: plan.warnings };
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

function planIngest(incoming: readonly ClassifiedSpan[], stored: readonly SpanRecord[], agents: AgentRegistry): SpanIngestPlan & { warnings: string[] } {
  const nodes = new Map<string, Node>();
  for (const span of stored) {
    const classified = classify(span);
    if (typeof classified !== "string") nodes.set(keyOf(span), { ...classified, isNew: false, rolloutId: null });
  }
  for (const item of incoming) if (!nodes.has(keyOf(item.span))) nodes.set(keyOf(item.span), { ...item, isNew: true, rolloutId: null });

  const nearestAgent = (node: Node): Node | null => {
    let current: Node | undefined = node;
    for (let depth = 0; current && depth < 10_000; depth++) {
      if (current.role === "agent") return current;
      current = current.span.parentSpanId ? nodes.get(`${current.span.traceId}/${current.span.parentSpanId}`) : undefined;
    }
    return null;
  };
  for (const node of nodes.values()) {
    const agent = node.aglRolloutId ? null : nearestAgent(node);
    node.rolloutId = node.aglRolloutId ? aglRolloutKey(node.aglRolloutId) : agent ? agentSpanRolloutKey(agent.span.traceId, agent.span.spanId) : null;
  }

  const plan: SpanIngestPlan & { warnings: string[] } = { spans: [], links: [], rollouts: [], rewards: [], warnings: [] };
  const groups = Map.groupBy(
    [...nodes.values()].filter((node) => node.rolloutId !== null),
    (node) => node.rolloutId!,
  );
  for (const [rolloutId, members] of groups) {
    if (!members.some((member) => member.isNew)) continue;
    const built = buildRollout(rolloutId, members, agents);
    if (built?.rollout) plan.rollouts.push(built.rollout);
    plan.warnings.push(...(built?.warnings ?? []));
    for (const member of members) {
      member.rewards?.forEach((dimension, index) => plan.rewards.push(rewardOf(rolloutId, member, dimension, index)));
    }
  }
  for (const node of nodes.values()) {
    if (node.isNew) plan.spans.push({ ...node.span, rolloutId: node.rolloutId });
    else if (node.rolloutId && node.span.rolloutId === null) plan.links.push({ traceId: node.span.traceId, spanId: node.span.spanId, rolloutId: node.rolloutId });
    if (node.isNew && node.rewards && !node.rolloutId) {
      plan.warnings.push(
        `span ${node.span.spanId} of trace ${node.span.traceId} is a reward annotation without ${AGENT_LIGHTNING.rolloutId} and no agent span above it yet: stored, it becomes a reward when its rollout's spans arrive`,
      );
    }
  }
  return plan;
}

/**
 * The rollout of a group: from its top agent span (input, output, status, latency, prompt, agent), with
 * model and tokens from the model calls in the group; an Agent Lightning group without an agent span is
 * made from its model calls alone. Null while the group has neither (only annotations so far), or when
 * the rollout was made by an earlier request (its agent span was stored before).
 */
function buildRollout(rolloutId: string, members: Node[], agents: AgentRegistry): { rollout: NewRollout | null; warnings: string[] } | null {
  const byStart = [...members].sort((a, b) => a.span.start.getTime() - b.span.start.getTime());
  const models = byStart.filter((member) => member.role === "model");
  const agentSpans = byStart.filter((member) => member.role === "agent");
  const isAgl = members[0]!.aglRolloutId !== null;
  const main = isAgl ? agentSpans[0] : agentSpans.find((member) => agentSpanRolloutKey(member.span.traceId, member.span.spanId) === rolloutId);
  if (isAgl ? !main && models.length === 0 : !main?.isNew) return null;

  const warnings: string[] = [];
  const source = main ?? models[0]!;
  const agentName = main ? agentNameOf(main.span) : (text(source.span.attributes[GEN_AI.agentName]) ?? text(source.span.resource[SERVICE_NAME]) ?? "unknown");
  const definition = agents.find(agentName) ?? agents.find(text(source.span.attributes[GEN_AI.agentId]) ?? "");

  const rawInput = main ? (main.span.attributes[MASTRA.agentRunInput] ?? main.span.attributes[MASTRA_LEGACY.input]) : (source.span.attributes[GEN_AI.inputMessages] ?? source.span.attributes[MASTRA_LEGACY.prompt]);
  const lastModel = models.at(-1);
  const rawOutput = main
    ? (main.span.attributes[MASTRA.agentRunOutput] ?? main.span.attributes[MASTRA_LEGACY.output])
    : (lastModel?.span.attributes[GEN_AI.outputMessages] ?? lastModel?.span.attributes[MASTRA_LEGACY.completion]);
  const input = inputOf(definition, rawInput);
  const output = outputOf(definition, rawOutput);
  const failedSpan = (main ? [main] : models).find((member) => member.span.statusCode === STATUS_ERROR);
  const error = failedSpan
    ? (failedSpan.span.statusMessage ?? text(failedSpan.span.attributes[ERROR_MESSAGE]) ?? `span ${failedSpan.span.name} ended with an error`)
    : output.error;

  const prompt = promptOf(source.span, definition, agentName, warnings);
  const start = main ? main.span.start.getTime() : Math.min(...models.map((member) => member.span.start.getTime()));
  const end = main ? main.span.end.getTime() : Math.max(...models.map((member) => member.span.end.getTime()));
  if (end - start > INT4_MAX) {
    return { rollout: null, warnings: [`span ${source.span.spanId} of trace ${source.span.traceId}: a run of ${end - start} ms is longer than a rollout can record (24 days); stored as spans only`] };
  }
  const modelNames = [...new Set(models.flatMap((member) => modelNameOf(member.span) ?? []))];
  return {
    rollout: {
      id: rolloutId,
      agent: definition?.id ?? agentName,
      source: "otlp",
      dataset: null,
      taskId: null,
      resourceName: prompt.resource,
      resourceVersion: prompt.version,
      arm: prompt.arm,
      candidateId: null,
      cycleId: null,
      phase: null,
      input,
      output: output.value,
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
function promptOf(span: SpanRecord, definition: AgentDefinition | undefined, agentName: string, warnings: string[]): { resource: string; version: number | null; arm: string | null } {
  const lookup = (metadataKey: string, attribute: string) =>
    span.attributes[`${MASTRA.metadataPrefix}${metadataKey}`] ?? span.attributes[metadataKey] ?? span.attributes[attribute] ?? span.resource[attribute];
  const resource = text(lookup(PROMPT_METADATA.resource, AGL_PROMPT.resource)) ?? definition?.prompt.resource ?? agentName;
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

/**
 * The rollout's input, put back into a registered agent's input schema so it can be replayed: the user
 * message read back through the agent's `message` (an input whose only required field is text, e.g.
 * `Post: {content}`), or parsed as the JSON input (the default message of other inputs); otherwise the user text.
 */
function inputOf(definition: AgentDefinition | undefined, raw: AttributeValue | undefined): Record<string, unknown> {
  const parsed = parseJsonText(raw);
  const userText = messageText(parsed, "user");
  if (userText === null) return isRecord(parsed) ? parsed : parsed === undefined ? {} : { value: parsed };
  if (definition) {
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
    if (structured.success) return structured.data as Record<string, unknown>;
  }
  return { text: userText };
}

/** The input field a user message can be read back into: the only required field, when it is a string. */
function onlyTextField(definition: AgentDefinition): string | undefined {
  const required = Object.entries(definition.inputSchema.shape).filter(([, field]) => !(field as { isOptional?: () => boolean }).isOptional?.());
  const [only] = required;
  return required.length === 1 && (only![1] as { _zod?: { def?: { type?: string } } })._zod?.def?.type === "string" ? only![0] : undefined;
}

/** The rollout's output: the structured object (checked against a registered agent's schema), else the text. */
function outputOf(definition: AgentDefinition | undefined, raw: AttributeValue | undefined): { value: Record<string, unknown> | null; error: string | null } {
  const parsed = parseJsonText(raw);
  if (parsed === undefined || parsed === null) return { value: null, error: null };
  if (isRecord(parsed) && (parsed.status === "aborted" || parsed.status === "suspended") && !("text" in parsed)) {
    return { value: null, error: `the run was ${parsed.status}${typeof parsed.reason === "string" ? `: ${parsed.reason}` : ""}` };
  }
  const textOut = messageText(parsed, "assistant");
  const object = isRecord(parsed) && isRecord(parsed.object) ? parsed.object : undefined;
  const fallback = object ?? (textOut !== null ? { text: textOut } : isRecord(parsed) ? parsed : { value: parsed });
  if (!definition) return { value: fallback, error: null };
  if (!definition.outputSchema) return textOut !== null ? { value: { text: textOut }, error: null } : { value: fallback, error: "the agent answers in text, and the span holds no text answer" };
  // Mastra's agent span holds {text, object}; some exporters put the structured object itself.
  const candidate = object ?? (isRecord(parsed) && !("text" in parsed) ? parsed : parseJsonText(textOut ?? undefined));
  const checked = definition.outputSchema.safeParse(candidate);
  if (checked.success) return { value: checked.data as Record<string, unknown>, error: null };
  const problems = checked.error.issues.map((issue) => `${issue.path.join(".") || "(output)"}: ${issue.message}`).join("; ");
  return { value: fallback, error: `output does not match the agent's schema: ${problems}` };
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

// Every span and attribute name the OTLP ingest reads, in one place. Sources: @mastra/otel-exporter 1.4.0
// (GenAI semantic conventions), @mastra/otel-exporter 0.3.x (the older `agent.<id>` shape), OpenInference's
// `llm.*` attributes, and Agent Lightning's agentlightning/semconv.py (branch v0.x).

/** OpenTelemetry GenAI semantic conventions, as Mastra 1.x emits them. */
export const GEN_AI = {
  operationName: "gen_ai.operation.name",
  agentName: "gen_ai.agent.name",
  agentId: "gen_ai.agent.id",
  systemInstructions: "gen_ai.system_instructions",
  requestModel: "gen_ai.request.model",
  responseModel: "gen_ai.response.model",
  providerName: "gen_ai.provider.name",
  inputTokens: "gen_ai.usage.input_tokens",
  outputTokens: "gen_ai.usage.output_tokens",
  inputMessages: "gen_ai.input.messages",
  outputMessages: "gen_ai.output.messages",
} as const;

/** `gen_ai.operation.name` values: an agent invocation, and the model calls that carry usage. */
export const INVOKE_AGENT = "invoke_agent";
export const MODEL_CALL_OPERATIONS: readonly string[] = ["chat", "text_completion", "generate_content", "tool_selection"];

/** Mastra's own attributes (@mastra/otel-exporter 1.x): the span type, the agent run's input and output, trace metadata. */
export const MASTRA = {
  spanType: "mastra.span.type",
  agentRunSpanType: "agent_run",
  agentRunInput: "mastra.agent_run.input",
  agentRunOutput: "mastra.agent_run.output",
  /** `tracingOptions.metadata` of a run lands on every span under this prefix. */
  metadataPrefix: "mastra.metadata.",
} as const;

/** The older shape (@mastra/otel-exporter 0.x): span `agent.<agentId>`, plain `input`/`output`, metadata keys unprefixed, `chat <model>` children with the pre-1.37 GenAI names. */
export const MASTRA_LEGACY = {
  agentSpanPrefix: "agent.",
  agentRunOperation: "agent.run",
  agentId: "agent.id",
  input: "input",
  output: "output",
  system: "gen_ai.system",
  prompt: "gen_ai.prompt",
  completion: "gen_ai.completion",
  promptTokens: "gen_ai.usage.prompt_tokens",
  completionTokens: "gen_ai.usage.completion_tokens",
} as const;

/** OpenInference's LLM span attributes (`llm.*`), which older agent instrumentations emit. */
export const LLM = {
  spanPrefix: "llm",
  modelName: "llm.model_name",
  provider: "llm.provider",
  promptTokens: "llm.token_count.prompt",
  completionTokens: "llm.token_count.completion",
} as const;

/** The prompt a run used, as the resource client stamps it: trace metadata (the key after `mastra.metadata.`) or a resource attribute. */
export const PROMPT_METADATA = { resource: "promptResource", version: "promptVersion", arm: "promptArm" } as const;
export const AGL_PROMPT = { resource: "agl.prompt.resource", version: "agl.prompt.version", arm: "agl.prompt.arm" } as const;

/** Agent Lightning (agentlightning/semconv.py): ids on the resource (a span attribute of the same name wins) and reward annotation spans. */
export const AGENT_LIGHTNING = {
  rolloutId: "agentlightning.rollout_id",
  attemptId: "agentlightning.attempt_id",
  annotationSpan: "agentlightning.annotation",
  /** `agentlightning.reward.<i>.name` / `.value`; dimension 0 is the primary reward. */
  rewardPrefix: "agentlightning.reward.",
  /** v0.2 annotation spans carried a single `reward` attribute. */
  legacyReward: "reward",
  /** AgentOps-era reward operations: JSON `{"type": "reward", "value": x}` in one of these. */
  agentOpsOutputs: ["agentops.task.output", "agentops.entity.output"],
} as const;

export const SERVICE_NAME = "service.name";
export const ERROR_MESSAGE = "error.message";

/** OTLP status codes (opentelemetry/proto/trace/v1/trace.proto). */
export const STATUS_ERROR = 2;

import type { ColumnType, Generated } from "kysely";

/** jsonb columns: pg parses them on read; writes go through JSON.stringify (pg would turn arrays into SQL arrays). */
type Json<T> = ColumnType<T, string, string>;
type CreatedAt = ColumnType<Date, Date | undefined, never>;

export interface PromptContent {
  /** How `components.instructions` is rendered: `{{name}}` placeholders are replaced by the named components. */
  engine: "placeholders";
  components: Record<string, string>;
}

export interface ResourceVersionsTable {
  name: string;
  version: number;
  content: Json<PromptContent>;
  parent_version: number | null;
  created_by: string;
  created_at: CreatedAt;
  metrics: Json<Record<string, unknown>>;
  note: string | null;
  /** Makes a publish from a retried activity land once. */
  idempotency_key: string | null;
}

export interface ResourceLabelsTable {
  name: string;
  label: string;
  version: number;
  updated_at: Date;
  updated_by: string;
  /** The share (0-100] of keyed traffic a `canary` label serves; null for every other label. */
  weight: ColumnType<number | null, number | null | undefined, number | null>;
}

export type ResourceEventKind = "published" | "labelled" | "rolled_back" | "canary_started" | "canary_promoted" | "canary_rolled_back";

export interface ResourceEventsTable {
  id: Generated<number>;
  name: string;
  kind: ResourceEventKind;
  label: string | null;
  from_version: number | null;
  to_version: number | null;
  actor: string;
  reason: string | null;
  created_at: CreatedAt;
  /** Makes a label move from a retried activity (a rollback workflow) land once. */
  idempotency_key: ColumnType<string | null, string | null | undefined, never>;
}

/** A process serving prompt resources from memory (store/resource-changes.ts): writers wait for its acknowledgement while its lease lasts. */
export interface ResourceCacheSubscribersTable {
  id: string;
  acked_barrier: number;
  expires_at: Date;
}

export interface DatasetsTable {
  name: string;
  /** The agent whose input schema validated the tasks. */
  agent: string;
  source: string;
  task_count: number;
  created_at: CreatedAt;
}

export type Split = "train" | "validation" | "test";

export interface TasksTable {
  dataset: string;
  id: string;
  position: number;
  input: Json<Record<string, unknown>>;
  expected: Json<Record<string, unknown>> | null;
  split: Split;
}

export type RolloutSource = "queue" | "otlp";
/**
 * collect: the incumbent on the train split; search: candidates (and a traffic cycle's incumbent) on dev
 * tasks; validate: the gate; test: the deployed version and the incumbent on the test split, and `agl test`.
 */
export type RolloutPhase = "collect" | "search" | "validate" | "test";

export interface RolloutsTable {
  id: string;
  agent: string;
  source: RolloutSource;
  dataset: string | null;
  task_id: string | null;
  resource_name: string;
  /** Null only while a cycle's candidate runs before it is published; `candidate_id` says which. */
  resource_version: number | null;
  candidate_id: string | null;
  cycle_id: string | null;
  phase: RolloutPhase | null;
  input: Json<Record<string, unknown>>;
  output: Json<Record<string, unknown>> | null;
  status: "succeeded" | "failed";
  error: string | null;
  latency_ms: number;
  model: string | null;
  input_tokens: number | null;
  output_tokens: number | null;
  trace_id: string | null;
  /** The system instructions it ran with, when they came along (OTLP); others are known by their prompt version. */
  instructions: ColumnType<string | null, string | null | undefined, never>;
  /** The tools the agent called, in order (`[{name, args, result}]`); null when it called none or the source does not say. */
  tool_calls: ColumnType<ToolCallRecord[] | null, string | null | undefined, never>;
  /** The arm of the traffic split that served the prompt (`production`, `canary`); null when no split chose it (cycles, the queue). */
  arm: ColumnType<string | null, string | null | undefined, never>;
  created_at: CreatedAt;
}

export interface ToolCallRecord {
  name: string;
  args: unknown;
  result: unknown;
}

export interface RewardsTable {
  id: Generated<number>;
  rollout_id: string;
  scorer: string;
  value: number;
  reason: string;
  details: Json<Record<string, unknown>>;
  /** Distinguishes several rewards of one scorer on one rollout (e.g. two human ratings); "" for one-per-rollout scorers. */
  dedupe_key: string;
  created_at: CreatedAt;
}

export type CycleOutcome = "deployed" | "kept" | "skipped" | "failed" | "cancelled";

export interface CyclesTable {
  id: string;
  agent: string;
  dataset: string | null;
  trigger: string;
  phase: string;
  progress: Json<Record<string, unknown>>;
  metrics: Json<Record<string, unknown>>;
  outcome: CycleOutcome | null;
  outcome_detail: string | null;
  incumbent_version: number | null;
  deployed_version: number | null;
  started_at: CreatedAt;
  finished_at: Date | null;
}

export interface CycleCandidatesTable {
  cycle_id: string;
  id: string;
  content: Json<PromptContent>;
  strategy: string;
  rationale: string;
  details: Json<Record<string, unknown>>;
  created_at: CreatedAt;
}

export interface AgentLeasesTable {
  agent: string;
  cycle_id: string;
  acquired_at: ColumnType<Date, Date | undefined, Date>;
}

/** A span received over OTLP; `rollout_id` is set once the span is known to belong to a rollout. */
export interface SpansTable {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  kind: number;
  start_time: Date;
  end_time: Date;
  status_code: number;
  status_message: string | null;
  attributes: Json<Record<string, unknown>>;
  resource: Json<Record<string, unknown>>;
  scope: string | null;
  rollout_id: string | null;
  received_at: CreatedAt;
}

export type CanaryStatus = "running" | "promoted" | "rolled_back";

export interface CanariesTable {
  id: string;
  agent: string;
  resource: string;
  /** The version `production` pointed at when the canary started: the arm the canary is compared with. */
  baseline_version: number;
  canary_version: number;
  weight: number;
  status: CanaryStatus;
  settings: Json<Record<string, unknown>>;
  /** The guard's last look: arms, intervals, decision. */
  state: ColumnType<Record<string, unknown>, string | undefined, string>;
  started_by: string;
  started_at: CreatedAt;
  decided_by: string | null;
  decision_reason: string | null;
  decided_at: Date | null;
}

/** Audit events not yet handed to the webhook dispatcher; filled by a trigger in the writing transaction. */
export interface WebhookOutboxTable {
  event_id: number;
}

export interface WebhookDeliveriesTable {
  event_id: number;
  url: string;
  kind: string;
  status: "pending" | "delivered" | "failed";
  attempts: ColumnType<number, number | undefined, number>;
  last_status: number | null;
  last_error: string | null;
  next_attempt_at: Date | null;
  delivered_at: Date | null;
  created_at: CreatedAt;
}

export interface Database {
  canaries: CanariesTable;
  webhook_outbox: WebhookOutboxTable;
  webhook_deliveries: WebhookDeliveriesTable;
  resource_versions: ResourceVersionsTable;
  resource_labels: ResourceLabelsTable;
  resource_events: ResourceEventsTable;
  resource_cache_subscribers: ResourceCacheSubscribersTable;
  datasets: DatasetsTable;
  tasks: TasksTable;
  rollouts: RolloutsTable;
  rewards: RewardsTable;
  cycles: CyclesTable;
  cycle_candidates: CycleCandidatesTable;
  agent_leases: AgentLeasesTable;
  spans: SpansTable;
}

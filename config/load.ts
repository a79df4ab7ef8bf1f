import { existsSync, readFileSync } from "node:fs";
import { basename, extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { z } from "zod";
import { isAgentDefinition } from "../agents/define.ts";
import { useConfiguredModelSettings } from "../agents/models/configured.ts";
import { type AgentRegistry, createAgentRegistry } from "../agents/registry.ts";
import type { AgentDefinition } from "../agents/types.ts";
import { type Config, configSchema, type ModelProvider } from "./schema.ts";

/** Environment variables and the setting each one sets; the README's configuration table mirrors this. */
export const environmentVariables = [
  { env: "AGL_DATA_DIR", path: "dataDir", type: "string" },
  { env: "TEMPORAL_ADDRESS", path: "temporal.address", type: "string" },
  { env: "TEMPORAL_NAMESPACE", path: "temporal.namespace", type: "string" },
  { env: "TEMPORAL_UI_URL", path: "temporal.uiUrl", type: "string" },
  { env: "AGL_TASK_QUEUE", path: "temporal.taskQueue", type: "string" },
  { env: "AGL_TEMPORAL_CLI", path: "temporal.cli", type: "string" },
  { env: "AGL_TEMPORAL_PORT", path: "temporal.devServer.port", type: "integer" },
  { env: "AGL_TEMPORAL_UI_PORT", path: "temporal.devServer.uiPort", type: "integer" },
  { env: "DATABASE_URL", path: "database.url", type: "string" },
  { env: "AGL_MODEL", path: "model.provider", type: "string" },
  { env: "AGL_MODEL_NAME", path: "model.name", type: "string" },
  { env: "OPENAI_BASE_URL", path: "model.baseUrl", type: "string" },
  { env: "OPENAI_API_KEY", path: "model.apiKey", type: "string" },
  { env: "AGL_MODEL_PATH", path: "model.path", type: "string" },
  { env: "AGL_MODEL_THREADS", path: "model.threads", type: "integer" },
  { env: "AGL_MODEL_LATENCY_MS", path: "model.latencyMs", type: "integer" },
  { env: "AGL_CYCLE_MARGIN", path: "cycle.margin", type: "number" },
  { env: "AGL_CYCLE_CONFIDENCE", path: "cycle.confidence", type: "number" },
  { env: "AGL_CYCLE_VALIDATION_REPEATS", path: "cycle.validationRepeats", type: "integer" },
  { env: "AGL_CYCLE_BATCH_SIZE", path: "cycle.batchSize", type: "integer" },
  { env: "AGL_CYCLE_CONCURRENCY", path: "cycle.concurrency", type: "integer" },
  { env: "AGL_CYCLE_PARALLEL_BATCHES", path: "cycle.parallelBatches", type: "integer" },
  { env: "AGL_MIN_TRAFFIC_ROLLOUTS", path: "cycle.minTrafficRollouts", type: "integer" },
  { env: "AGL_CYCLE_SCORERS", path: "cycle.scorers", type: "json" },
  { env: "AGL_CYCLE_DEPLOY", path: "cycle.deploy", type: "string" },
  { env: "AGL_CYCLE_CANARY_WEIGHT", path: "cycle.canaryWeight", type: "number" },
  { env: "AGL_GUARD_MIN_ROLLOUTS", path: "guard.minRollouts", type: "integer" },
  { env: "AGL_GUARD_ALPHA", path: "guard.alpha", type: "number" },
  { env: "AGL_GUARD_MAX_DURATION", path: "guard.maxDuration", type: "string" },
  { env: "AGL_GUARD_JUDGE_SAMPLE_RATE", path: "guard.judgeSampleRate", type: "number" },
  { env: "AGL_WEBHOOKS", path: "webhooks", type: "json" },
  { env: "AGL_WORKER_MAX_BATCHES", path: "worker.maxBatches", type: "integer" },
  { env: "AGL_JUDGE_PROVIDER", path: "scorers.judge.provider", type: "string" },
  { env: "AGL_JUDGE_BASE_URL", path: "scorers.judge.baseUrl", type: "string" },
  { env: "AGL_JUDGE_MODEL", path: "scorers.judge.model", type: "string" },
  { env: "AGL_JUDGE_API_KEY", path: "scorers.judge.apiKey", type: "string" },
  { env: "AGL_PROXY_REWARDS", path: "rewards.proxy", type: "json" },
  { env: "AGL_OPTIMIZER_ALGORITHM", path: "optimizer.algorithm", type: "string" },
  { env: "AGL_OPTIMIZER_CANDIDATES", path: "optimizer.candidates", type: "integer" },
  { env: "AGL_OPTIMIZER_ROUNDS", path: "optimizer.rounds", type: "integer" },
  { env: "AGL_OPTIMIZER_BEAM_WIDTH", path: "optimizer.beamWidth", type: "integer" },
  { env: "AGL_OPTIMIZER_BUDGET", path: "optimizer.budget", type: "integer" },
  { env: "AGL_OPTIMIZER_LLM_BASE_URL", path: "optimizer.llm.baseUrl", type: "string" },
  { env: "AGL_OPTIMIZER_LLM_MODEL", path: "optimizer.llm.model", type: "string" },
  { env: "AGL_OPTIMIZER_LLM_API_KEY", path: "optimizer.llm.apiKey", type: "string" },
  { env: "AGL_OPTIMIZER_SEED", path: "optimizer.seed", type: "integer" },
  { env: "AGL_OPTIMIZER_TIMEOUT_MINUTES", path: "optimizer.timeoutMinutes", type: "number" },
  { env: "AGL_OPTIMIZER_COMMAND", path: "optimizer.command", type: "json" },
  { env: "AGL_HOST", path: "server.host", type: "string" },
  { env: "AGL_PORT", path: "server.port", type: "integer" },
  { env: "AGL_TOKEN", path: "server.token", type: "string" },
  { env: "AGL_MAX_BODY_BYTES", path: "server.maxBodyBytes", type: "integer" },
] as const;

/** Looked for in the working directory, in this order; at most one may exist. */
export const CONFIG_FILE_NAMES = ["agl.config.ts", "agl.config.mts", "agl.config.js", "agl.config.mjs", "agl.config.json"] as const;
const MODULE_EXTENSIONS = new Set([".ts", ".mts", ".js", ".mjs"]);

export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface LoadConfigOptions {
  /** Directory the relative paths (data folder, config file) resolve against. */
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Explicit config file; otherwise AGL_CONFIG, otherwise the one of CONFIG_FILE_NAMES in cwd. */
  file?: string;
  /** The agents to register (a module config's; without one, loadProject brings the bundled examples). */
  agents?: readonly AgentDefinition[];
  /** Settings that win over file and environment (tests, benchmarks). */
  overrides?: Record<string, unknown>;
}

export interface LoadedConfig extends Omit<Config, "model"> {
  /** Without an explicit provider: an OpenAI-compatible endpoint when one is configured, else the local model. */
  model: Config["model"] & { provider: ModelProvider };
  /** Absolute path of the project data folder. */
  dataPath: string;
  /** The config file that was read, if any. */
  file?: string;
  /** The agents every command, worker and server of this project knows. */
  agents: AgentRegistry;
}

type Source = { kind: "file"; file: string } | { kind: "env"; name: string } | { kind: "override" };

/**
 * Reads the configuration: defaults < config file < environment < overrides.
 * Every problem is reported with the setting's key, the offending value, where it came from and what
 * is allowed, so a bad value fails at start instead of deep inside a cycle.
 */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const file = configFile(options);
  if (file && MODULE_EXTENSIONS.has(extname(file))) throw new ConfigError(`Config file ${file} is a module: load it with loadProject().`);
  return resolveConfig(options, file, file ? readJsonObject(file) : undefined);
}

/**
 * Reads the project's configuration, agents included: `agl.config.ts` (or .mts/.js/.mjs, or --config
 * FILE) exports `defineConfig({agents, ...settings})` as its default; `agl.config.json` holds settings
 * only. Without a module config the bundled example agents are registered, so the quick start works in
 * any folder. A module that fails to import, a bad agent or two agents with one id stop here, naming
 * the file, before anything is opened or written.
 */
export async function loadProject(options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const file = configFile(options);
  if (!file || !MODULE_EXTENSIONS.has(extname(file))) {
    const agents = options.agents ?? (await import("../agents/examples.ts")).bundledAgents;
    return withConfiguredModel(resolveConfig({ ...options, agents }, file, file ? readJsonObject(file) : undefined));
  }
  let exported: unknown;
  try {
    exported = ((await import(pathToFileURL(file).href)) as { default?: unknown }).default;
  } catch (error) {
    throw new ConfigError(`Could not load ${file}: ${(error as Error).message}`);
  }
  if (typeof exported !== "object" || exported === null || Array.isArray(exported)) {
    throw new ConfigError(`Config file ${file} must export its configuration as the default export: export default defineConfig({ agents: [...] }).`);
  }
  const { agents = [], ...settings } = exported as { agents?: unknown };
  if (!Array.isArray(agents)) throw new ConfigError(`Config file ${file}: agents must be an array of agents made by defineAgent().`);
  const notAgents = agents.flatMap((agent, index) => (isAgentDefinition(agent) ? [] : [index]));
  if (notAgents.length > 0) throw new ConfigError(`Config file ${file}: agents[${notAgents.join("], agents[")}] ${notAgents.length > 1 ? "are not agents" : "is not an agent"} made by defineAgent().`);
  return withConfiguredModel(resolveConfig({ ...options, agents: options.agents ?? agents }, file, settings));
}

/** Agents built on `configuredModel()` run on the model this configuration selects. */
function withConfiguredModel(config: LoadedConfig): LoadedConfig {
  useConfiguredModelSettings(config);
  return config;
}

/** The config file in effect: the explicit one (which must exist), or the only one of CONFIG_FILE_NAMES in cwd. */
function configFile(options: LoadConfigOptions): string | undefined {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const explicit = options.file ?? env.AGL_CONFIG;
  if (explicit) {
    const file = resolve(cwd, explicit);
    if (!existsSync(file)) throw new ConfigError(`Config file ${file} does not exist (from ${options.file ? "--config" : "AGL_CONFIG"}).`);
    const extension = extname(file);
    if (extension !== ".json" && !MODULE_EXTENSIONS.has(extension)) throw new ConfigError(`Config file ${file}: expected a .ts, .mts, .js, .mjs or .json file.`);
    return file;
  }
  const found = CONFIG_FILE_NAMES.map((name) => resolve(cwd, name)).filter((candidate) => existsSync(candidate));
  if (found.length > 1) throw new ConfigError(`Found ${found.map((candidate) => basename(candidate)).join(" and ")} in ${cwd}: keep one config file (or pass --config FILE).`);
  return found[0];
}

/** defaults < config file < environment < overrides, validated as a whole. */
function resolveConfig(options: LoadConfigOptions, file: string | undefined, fromFile: Record<string, unknown> | undefined): LoadedConfig {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const sources = new Map<string, Source>();
  const raw: Record<string, unknown> = {};
  if (file && fromFile) {
    for (const [path, value] of leaves(fromFile)) {
      setPath(raw, path, value);
      sources.set(path, { kind: "file", file });
    }
  }

  const envProblems: string[] = [];
  for (const variable of environmentVariables) {
    const text = env[variable.env];
    if (text === undefined || text === "") continue;
    try {
      setPath(raw, variable.path, parseEnvValue(variable.env, variable.path, variable.type, text));
      sources.set(variable.path, { kind: "env", name: variable.env });
    } catch (error) {
      envProblems.push((error as Error).message.replace(/^Invalid configuration: /, "  "));
    }
  }
  if (envProblems.length > 0) throw new ConfigError(`Invalid configuration:\n${envProblems.join("\n")}`);

  for (const [path, value] of leaves(options.overrides ?? {})) {
    setPath(raw, path, value);
    sources.set(path, { kind: "override" });
  }

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(describeIssues(parsed.error, raw, sources));
  const config = parsed.data;
  checkCombinations(config, sources);
  let agents: AgentRegistry;
  try {
    agents = createAgentRegistry(options.agents ?? []);
  } catch (error) {
    throw new ConfigError(`${file ? `Config file ${file}` : "The registered agents"}: ${(error as Error).message}.`);
  }
  checkScorers(config, agents, sources);
  const provider = config.model.provider ?? (config.model.baseUrl ? "openai-compatible" : "local");
  return {
    ...config,
    model: { ...config.model, provider },
    dataPath: resolve(cwd, config.dataDir),
    ...(file ? { file } : {}),
    agents,
  };
}

function readJsonObject(file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new ConfigError(`Config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(`Config file ${file} must contain a JSON object at the top level.`);
  }
  return value as Record<string, unknown>;
}

/** Flattens nested objects to dotted paths; arrays are values, not branches. */
function* leaves(value: Record<string, unknown>, prefix = ""): Generator<[string, unknown]> {
  for (const [key, child] of Object.entries(value)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (typeof child === "object" && child !== null && !Array.isArray(child)) yield* leaves(child as Record<string, unknown>, path);
    else yield [path, child];
  }
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys.at(-1)!] = value;
}

function getPath(target: unknown, path: readonly PropertyKey[]): unknown {
  let node = target;
  for (const key of path) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

function parseEnvValue(name: string, path: string, type: string, text: string): unknown {
  const fail = (allowed: string) =>
    new ConfigError(`Invalid configuration: ${path} = ${JSON.stringify(text)} (from environment variable ${name}): ${allowed}.`);
  switch (type) {
    case "integer": {
      if (!/^-?\d+$/.test(text.trim())) throw fail("expected a whole number");
      return Number(text);
    }
    case "number": {
      const value = Number(text);
      if (text.trim() === "" || !Number.isFinite(value)) throw fail("expected a number");
      return value;
    }
    case "json": {
      try {
        return JSON.parse(text);
      } catch {
        throw fail('expected JSON, e.g. ["python3","-m","agl_optimizer"]');
      }
    }
    default:
      return text;
  }
}

function describeSource(source: Source | undefined): string {
  if (!source) return "default";
  if (source.kind === "env") return `environment variable ${source.name}`;
  if (source.kind === "file") return `config file ${source.file}`;
  return "override";
}

function describeIssues(error: z.ZodError, raw: unknown, sources: Map<string, Source>): string {
  const lines = error.issues.map((issue) => {
    if (issue.code === "unrecognized_keys") {
      const parent = issue.path.join(".");
      const known = `known settings${parent ? ` in ${parent}` : ""}: ${knownSettings(issue.path).join(", ")}`;
      return issue.keys
        .map((key) => {
          const path = parent ? `${parent}.${key}` : key;
          const value = getPath(raw, [...issue.path, key]);
          return `  ${path} = ${JSON.stringify(value)} (from ${describeSource(sourceOf(sources, path))}): unknown setting; ${known}`;
        })
        .join("\n");
    }
    const path = issue.path.join(".");
    const value = getPath(raw, issue.path);
    return `  ${path} = ${JSON.stringify(value)} (from ${describeSource(sourceOf(sources, path))}): ${issue.message}`;
  });
  return `Invalid configuration:\n${lines.join("\n")}`;
}

/** Where a setting came from; an unknown section is flattened to its leaves, so any leaf under it answers; an array item is its array's. */
function sourceOf(sources: Map<string, Source>, path: string): Source | undefined {
  return sources.get(path) ?? [...sources].find(([key]) => key.startsWith(`${path}.`) || path.startsWith(`${key}.`))?.[1];
}

/** The setting names the schema accepts in the object at `path`, for "did you mean" help on a typo. */
function knownSettings(path: readonly PropertyKey[]): string[] {
  type Node = { _zod: { def: { innerType?: Node; shape?: Record<string, Node> } } };
  const unwrap = (node: Node | undefined) => {
    while (node?._zod.def.innerType) node = node._zod.def.innerType;
    return node;
  };
  let node = unwrap(configSchema as unknown as Node);
  for (const key of path) node = unwrap(node?._zod.def.shape?.[String(key)]);
  return Object.keys(node?._zod.def.shape ?? {});
}

/** A scorer `cycle.scorers` names must be built in or belong to every registered agent, whose rewards it then weighs. */
function checkScorers(config: Config, agents: AgentRegistry, sources: Map<string, Source>): void {
  const builtIn = (id: string) => ["ground-truth", "judge", "human", "proxy"].includes(id) || id.startsWith("proxy:");
  const problems = (config.cycle.scorers ?? []).flatMap((id) => {
    const lacking = builtIn(id) ? [] : agents.list().filter((agent) => !agent.scorers.some((scorer) => scorer.id === id));
    return lacking.length > 0 ? [`"${id}" is neither built in (ground-truth, judge, human, proxy, proxy:<event>) nor a scorer of agent${lacking.length > 1 ? "s" : ""} ${lacking.map((agent) => agent.id).join(", ")}`] : [];
  });
  if (problems.length > 0) {
    throw new ConfigError(`Invalid configuration: cycle.scorers = ${JSON.stringify(config.cycle.scorers)} (from ${describeSource(sourceOf(sources, "cycle.scorers"))}): ${problems.join("; ")}.`);
  }
}

function checkCombinations(config: Config, sources: Map<string, Source>): void {
  if (config.model.provider === "openai-compatible" && !config.model.baseUrl) {
    throw new ConfigError(
      `Invalid configuration: model.provider = "openai-compatible" (from ${describeSource(sources.get("model.provider"))}) needs model.baseUrl (OPENAI_BASE_URL), e.g. http://127.0.0.1:11434/v1.`,
    );
  }
  const judge = config.scorers.judge;
  if (judge.provider === "openai-compatible" && !judge.baseUrl && !config.model.baseUrl) {
    throw new ConfigError(
      `Invalid configuration: scorers.judge.provider = "openai-compatible" (from ${describeSource(sources.get("scorers.judge.provider"))}) needs scorers.judge.baseUrl (AGL_JUDGE_BASE_URL) or model.baseUrl.`,
    );
  }
  const unknownEvents = (config.cycle.scorers ?? []).filter((scorer) => scorer.startsWith("proxy:") && !(scorer.slice("proxy:".length) in config.rewards.proxy));
  if (unknownEvents.length > 0) {
    const known = Object.keys(config.rewards.proxy);
    throw new ConfigError(
      `Invalid configuration: cycle.scorers = ${JSON.stringify(config.cycle.scorers)} (from ${describeSource(sourceOf(sources, "cycle.scorers"))}) names ${unknownEvents.join(", ")}, which rewards.proxy does not map to a reward (${known.length > 0 ? `configured events: ${known.join(", ")}` : "no events are configured"}).`,
    );
  }
  const urls = config.webhooks.map((webhook) => webhook.url);
  const repeated = urls.filter((url, index) => urls.indexOf(url) !== index);
  if (repeated.length > 0) {
    throw new ConfigError(`Invalid configuration: webhooks (from ${describeSource(sourceOf(sources, "webhooks"))}) lists ${repeated[0]} twice: one entry per receiver (merge their events).`);
  }
  if (config.server.host !== "127.0.0.1" && config.server.host !== "localhost" && config.server.host !== "::1" && !config.server.token) {
    throw new ConfigError(
      `Invalid configuration: server.host = ${JSON.stringify(config.server.host)} (from ${describeSource(sources.get("server.host"))}) exposes the server beyond loopback; set server.token (AGL_TOKEN) so requests must authenticate.`,
    );
  }
}

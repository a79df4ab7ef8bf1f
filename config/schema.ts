import { availableParallelism } from "node:os";
import { z } from "zod";

export const EVENT_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
export const EVENT_NAME_RULE = "an event name: a letter, then up to 63 letters, digits, dashes or underscores";
/** A scorer id: a built-in (ground-truth, judge, human, proxy, proxy:<event>) or one an agent defines; checked against the agents when loaded. */
const scorerName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, "expected a scorer id such as ground-truth, judge, human, proxy or proxy:<event>");

/** What a webhook may subscribe to: the audit trail's events, the canary's under `canary.*`. */
export const WEBHOOK_EVENTS = ["published", "labelled", "rolled_back", "canary.started", "canary.promoted", "canary.rolled_back"] as const;
export type WebhookEventKind = (typeof WEBHOOK_EVENTS)[number];
/** A duration as the CLI writes it: 90s, 30m, 24h, 7d, 1h30m. */
export const DURATION = /^(\d+(ms|s|m|h|d))+$/;

/** What each optimizer algorithm can change; an agent it cannot apply to is refused before a cycle starts. */
export const OPTIMIZER_ALGORITHMS = ["llm-free", "few-shot", "apo", "gepa"] as const;
export type OptimizerAlgorithm = (typeof OPTIMIZER_ALGORITHMS)[number];

/** Every setting has a default, so an empty configuration runs the embedded, offline default. */
export const configSchema = z
  .object({
    dataDir: z.string().min(1).default(".agl"),
    temporal: z
      .object({
        address: z
          .string()
          .regex(/^[^\s:]+:\d{1,5}$/, "expected host:port")
          .optional(),
        namespace: z.string().min(1).default("default"),
        /** The Temporal UI of the cluster at `address`, for links to runs (the embedded dev server's is known). */
        uiUrl: z
          .url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" })
          .transform((url) => url.replace(/\/+$/, ""))
          .optional(),
        taskQueue: z.string().min(1).default("agl"),
        cli: z.string().min(1).default(".venv/bin/temporal"),
        devServer: z
          .object({
            port: z.number().int().min(0).max(65535).default(0),
            uiPort: z.number().int().min(0).max(65535).default(0),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    database: z
      .object({
        url: z
          .string()
          .regex(/^postgres(ql)?:\/\//, "expected a postgres:// or postgresql:// URL")
          .optional(),
      })
      .strict()
      .prefault({}),
    model: z
      .object({
        provider: z.enum(["local", "fake", "fake-nearest-neighbour", "openai-compatible"]).optional(),
        name: z.string().min(1).optional(),
        baseUrl: z.url().optional(),
        apiKey: z.string().optional(),
        path: z.string().min(1).optional(),
        // Half the cores: llama.cpp's threads spin while they wait, and starved of a core (the worker, Temporal
        // and the store need some) a 135M model slows down tenfold; on 2 cores one thread is as fast as two.
        threads: z.number().int().min(1).max(256).default(Math.max(1, Math.floor(availableParallelism() / 2))),
        contextSize: z.number().int().min(512).max(32768).default(2048),
        temperature: z.number().min(0).max(2).default(0),
        maxOutputTokens: z.number().int().min(8).max(4096).default(64),
        latencyMs: z.number().int().min(0).max(60_000).default(0),
      })
      .strict()
      .prefault({}),
    cycle: z
      .object({
        /** Deploy only when the one-sided lower bound on the candidate's paired gain over the incumbent exceeds this. */
        margin: z.number().min(0).max(2).default(0),
        /** The one-sided confidence of that bound (before the correction for several finalists). */
        confidence: z.number().min(0.5).max(0.999).default(0.9),
        /** Runs of each contender on each validation task, for models whose answers vary. */
        validationRepeats: z.number().int().min(1).max(10).default(1),
        batchSize: z.number().int().min(1).max(1000).default(20),
        concurrency: z.number().int().min(1).max(256).default(4),
        parallelBatches: z.number().int().min(1).max(64).default(2),
        collectTimeoutMinutes: z.number().min(1).max(24 * 60).default(30),
        /** A traffic-window run with fewer scored rollouts than this ends "skipped: not enough data". */
        minTrafficRollouts: z.number().int().min(1).max(1_000_000).default(20),
        /** Overrides every agent's scorers: the rewards a cycle computes and averages (with the agent's weights, 1 for others); unset: each agent's own. */
        scorers: z.array(scorerName).min(1).optional(),
        /** Where a cycle's winner goes: straight to `production`, or onto the `canary` label under a guard. */
        deploy: z.enum(["production", "canary"]).default("production"),
        /** The canary's share of keyed traffic, in percent, when `deploy` is "canary". */
        canaryWeight: z.number().gt(0, "expected more than 0 (percent)").max(100, "expected at most 100 (percent)").default(10),
      })
      .strict()
      .prefault({}),
    guard: z
      .object({
        /** Rollouts per arm before the guard decides anything. */
        minRollouts: z.number().int().min(2).max(1_000_000).default(100),
        /** The guard looks again each time the canary arm has this many more rollouts. */
        lookEvery: z.number().int().min(1).max(1_000_000).default(20),
        /** The chance of a wrong promotion or rollback under no difference, over all looks. */
        alpha: z.number().min(0.001).max(0.5).default(0.05),
        /** After this long the canary ends: promoted if the last look says so, else rolled back. */
        maxDuration: z
          .string()
          .regex(DURATION, "expected a duration such as 90s, 30m, 24h or 7d")
          .refine((text) => /[1-9]/.test(text), "expected a duration longer than 0")
          .default("24h"),
        /** Share of the arms' rollouts the LLM judge rates (0 for none). */
        judgeSampleRate: z.number().min(0).max(1).default(0.1),
        /** A run slower than production's p90 × (1 + this) counts as slow for the latency guardrail. */
        latencyTolerance: z.number().min(0).max(100).default(0.2),
        /** A guard activity silent this long is taken over by another worker. */
        heartbeatTimeoutSeconds: z.number().int().min(1).max(600).default(30),
      })
      .strict()
      .prefault({}),
    /** Receivers of signed change events. */
    webhooks: z
      .array(
        z
          .object({
            url: z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" }),
            secret: z.string().min(24, "expected a secret of at least 24 characters (e.g. the output of openssl rand -hex 32)"),
            events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).default([...WEBHOOK_EVENTS]),
            maxAttempts: z.number().int().min(1).max(100).default(12),
            /** The first retry's delay; each further one doubles, up to `retryMaxSeconds`. */
            retryInitialSeconds: z.number().min(0.01).max(3600).default(1),
            retryMaxSeconds: z.number().min(0.01).max(86_400).default(600),
          })
          .strict(),
      )
      .default([]),
    worker: z
      .object({
        /** Agent batches one worker runs at once; unset: what its model can run (see maxAgentBatches). */
        maxBatches: z.number().int().min(1).max(256).optional(),
      })
      .strict()
      .prefault({}),
    scorers: z
      .object({
        /** The LLM-as-judge's model; unset fields take the agent model's settings. */
        judge: z
          .object({
            provider: z.enum(["local", "fake", "openai-compatible"]).optional(),
            baseUrl: z.url().optional(),
            model: z.string().min(1).optional(),
            apiKey: z.string().optional(),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    rewards: z
      .object({
        /** Outcome event name -> the reward a rollout gets when the event is posted for it (POST /v1/outcomes). */
        proxy: z.record(z.string().regex(EVENT_NAME, EVENT_NAME_RULE), z.number().min(-1).max(1)).default({}),
      })
      .strict()
      .prefault({}),
    optimizer: z
      .object({
        algorithm: z.enum(OPTIMIZER_ALGORITHMS).default("llm-free"),
        /** Children proposed per beam member and round (APO's branch factor). */
        candidates: z.number().int().min(1).max(8).default(3),
        /** Search rounds; each proposes children of the beam and keeps the best by dev score. */
        rounds: z.number().int().min(1).max(10).default(1),
        beamWidth: z.number().int().min(1).max(10).default(2),
        /** Share of the train split held out of the optimizer's input to score the search. */
        devFraction: z.number().min(0.05).max(0.5).default(0.25),
        minibatchSize: z.number().int().min(1).max(20).default(4),
        /** GEPA: the agent runs its search may spend (minibatches and dev evaluations); it stops before an iteration it could not pay for. */
        budget: z.number().int().min(1).max(1_000_000).default(300),
        seed: z.number().int().default(42),
        maxExamples: z.number().int().min(0).max(20).default(6),
        maxKeywords: z.number().int().min(0).max(20).default(6),
        timeoutMinutes: z.number().min(0.05).max(24 * 60).default(10),
        command: z.array(z.string().min(1)).min(1).default([".venv/bin/python", "-m", "agl_optimizer"]),
        /** The model APO critiques and edits with; without a base URL, the configured agent model served locally. */
        llm: z
          .object({
            baseUrl: z.url().optional(),
            model: z.string().min(1).optional(),
            apiKey: z.string().optional(),
            timeoutSeconds: z.number().positive().max(3600).default(120),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    server: z
      .object({
        host: z.string().min(1).default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(4318),
        token: z.string().min(16, "expected at least 16 characters").optional(),
        /** Largest request body, compressed and once decompressed (OTLP ingest): a bigger one is refused with 413. */
        maxBodyBytes: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024 * 1024)
          .default(4 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type ModelProvider = NonNullable<Config["model"]["provider"]>;

import { availableParallelism } from "node:os";
import { z } from "zod";

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
        provider: z.enum(["local", "fake", "openai-compatible"]).optional(),
        name: z.string().min(1).optional(),
        baseUrl: z.url().optional(),
        apiKey: z.string().optional(),
        path: z.string().min(1).optional(),
        threads: z.number().int().min(1).max(256).default(availableParallelism()),
        contextSize: z.number().int().min(512).max(32768).default(2048),
        temperature: z.number().min(0).max(2).default(0),
        maxOutputTokens: z.number().int().min(8).max(4096).default(64),
        latencyMs: z.number().int().min(0).max(60_000).default(0),
      })
      .strict()
      .prefault({}),
    cycle: z
      .object({
        margin: z.number().min(0).max(2).default(0.02),
        batchSize: z.number().int().min(1).max(1000).default(20),
        concurrency: z.number().int().min(1).max(256).default(4),
        parallelBatches: z.number().int().min(1).max(64).default(2),
        collectTimeoutMinutes: z.number().min(1).max(24 * 60).default(30),
      })
      .strict()
      .prefault({}),
    optimizer: z
      .object({
        algorithm: z.enum(["llm-free"]).default("llm-free"),
        candidates: z.number().int().min(1).max(10).default(3),
        seed: z.number().int().default(42),
        maxExamples: z.number().int().min(0).max(20).default(6),
        maxKeywords: z.number().int().min(0).max(20).default(6),
        timeoutMinutes: z.number().min(0.05).max(24 * 60).default(10),
        command: z.array(z.string().min(1)).min(1).default([".venv/bin/python", "-m", "agl_optimizer"]),
      })
      .strict()
      .prefault({}),
    server: z
      .object({
        host: z.string().min(1).default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(4318),
        token: z.string().min(16, "expected at least 16 characters").optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type ModelProvider = NonNullable<Config["model"]["provider"]>;

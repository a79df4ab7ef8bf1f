import { readFileSync } from "node:fs";
import type { Context } from "hono";
import { z } from "zod";
import { analyzeAgent } from "../../runtime/analysis.ts";
import { canaryEvidence, lookJson } from "../../runtime/canary-evidence.ts";
import { listScheduleJson } from "../../runtime/schedules.ts";
import { type Canary, canaryJson } from "../../store/canaries.ts";
import { type Cycle, cycleJson } from "../../store/cycles.ts";
import type { PhaseSpan } from "../../store/dashboard.ts";
import { eventJson, PRODUCTION, versionJson } from "../../store/resources.ts";
import { rewardJson, type Rollout } from "../../store/rollouts.ts";
import type { RouteModule, ServerDependencies } from "../app.ts";
import { HttpError } from "../http-errors.ts";

const CYCLES_SHOWN = 50;
const HISTORY_SHOWN = 100;

/** The page, its script and its style sheet: hand-written files next to this module, no build step. */
const ASSETS: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/dashboard/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/dashboard/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};

/** Everything the page loads comes from this server; nothing inline runs. */
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const POSITIVE = "must be a positive whole number";
const REWARD = "must be a number from -1 to 1";
const rewardBound = z.coerce.number({ error: REWARD }).min(-1, REWARD).max(1, REWARD).optional();
const rolloutQuery = z
  .object({
    version: z.coerce.number({ error: POSITIVE }).int(POSITIVE).min(1, POSITIVE).optional(),
    source: z.enum(["queue", "otlp"], { error: 'must be "queue" or "otlp"' }).optional(),
    scorer: z.string().min(1).max(200).optional(),
    min: rewardBound,
    max: rewardBound,
    limit: z.coerce.number({ error: "must be a whole number from 1 to 500" }).int("must be a whole number from 1 to 500").min(1, "must be a whole number from 1 to 500").max(500, "must be a whole number from 1 to 500").default(50),
  })
  .strict();

/**
 * The dashboard `agl up` serves at `/`: the static page, and the JSON it polls. Statistics come from
 * `analyzeAgent` (the same numbers as `agl analyze`); label moves go through the resources API
 * (`POST /v1/resources/:name/labels/:label`), the same store operations as `agl prompts rollback|promote`.
 */
export const dashboardRoutes: RouteModule = (app, deps) => {
  const { config, store } = deps;
  for (const [path, asset] of Object.entries(ASSETS)) {
    const body = readFileSync(new URL(`../dashboard/${asset.file}`, import.meta.url), "utf8");
    app.get(path, (context) => {
      context.header("Content-Type", asset.type);
      context.header("Cache-Control", "no-cache");
      context.header("Content-Security-Policy", CONTENT_SECURITY_POLICY);
      context.header("X-Content-Type-Options", "nosniff");
      return context.body(body);
    });
  }

  app.get("/v1/dashboard/pulse", async (context) => {
    const agent = config.agents.get(context.req.query("agent") ?? "").id;
    return context.json({ stamp: await store.dashboard.pulse(agent) });
  });

  app.get("/v1/dashboard/agents", async (context) => {
    const agents = await Promise.all(
      config.agents.list().map(async (agent) => {
        const resource = agent.prompt.resource;
        const production = (await store.resources.findByLabel(resource, PRODUCTION)) ?? null;
        const deployment = production ? (await store.resources.events(resource, HISTORY_SHOWN)).find((event) => event.label === PRODUCTION) : undefined;
        const [latestCycle] = await store.cycles.list({ agent: agent.id, limit: 1 });
        return {
          id: agent.id,
          description: agent.description,
          resource,
          production: production && {
            version: production.version,
            deployedAt: deployment?.createdAt.toISOString() ?? production.createdAt.toISOString(),
            deployedBy: deployment?.actor ?? production.createdBy,
            kind: deployment?.kind ?? "published",
            reason: deployment?.reason ?? null,
          },
          latestCycle: latestCycle ? cycleJson(latestCycle) : null,
        };
      }),
    );
    return context.json({ agents, temporal: { namespace: config.temporal.namespace, uiUrl: deps.temporal?.uiUrl ?? null } });
  });

  app.get("/v1/dashboard/agents/:agent", async (context) => {
    const agent = config.agents.get(context.req.param("agent"));
    const resource = agent.prompt.resource;
    const [analysis, cycles, versions, [canary]] = await Promise.all([
      analyzeAgent(store, config, agent.id),
      store.cycles.list({ agent: agent.id, limit: CYCLES_SHOWN }),
      store.resources.listVersions(resource),
      store.canaries.list(agent.id, 1),
    ]);
    const [history, spans] = await Promise.all([
      versions.length > 0 ? store.resources.events(resource, HISTORY_SHOWN) : [],
      store.dashboard.phaseSpans(cycles.map((cycle) => cycle.id)),
    ]);
    const spansBy = Map.groupBy(spans, (span) => span.cycleId);
    return context.json({
      agent: agent.id,
      resource,
      analysis,
      cycles: cycles.map((cycle) => dashboardCycle(cycle, spansBy.get(cycle.id) ?? [], deps)),
      versions: versions.map(versionJson),
      history: history.map(eventJson),
      canary: canary ? await dashboardCanary(canary, deps) : null,
    });
  });

  app.get("/v1/dashboard/agents/:agent/rollouts", async (context) => {
    const agent = config.agents.get(context.req.param("agent"));
    const query = parseQuery(context, rolloutQuery);
    if (query.min !== undefined && query.max !== undefined && query.min > query.max) {
      throw new HttpError(400, "invalid_input", `The reward range is empty: min ${query.min} is above max ${query.max}.`);
    }
    const rollouts = await store.dashboard.searchRollouts({
      agent: agent.id,
      limit: query.limit,
      ...(query.version !== undefined ? { version: query.version } : {}),
      ...(query.source !== undefined ? { source: query.source } : {}),
      ...(query.scorer !== undefined ? { scorer: query.scorer } : {}),
      ...(query.min !== undefined ? { minReward: query.min } : {}),
      ...(query.max !== undefined ? { maxReward: query.max } : {}),
    });
    return context.json({ agent: agent.id, rollouts: rollouts.map(rolloutJson) });
  });

  app.get("/v1/dashboard/schedules", async (context) => {
    const client = deps.temporal?.client;
    if (!client) return context.json({ available: false, schedules: [] });
    try {
      return context.json({ available: true, schedules: await listScheduleJson(client, store) });
    } catch (error) {
      throw new HttpError(503, "temporal_unavailable", `Temporal did not answer (${(error as Error).message}); schedules show again once it does.`);
    }
  });
};

function dashboardCycle(cycle: Cycle, spans: PhaseSpan[], deps: ServerDependencies) {
  const uiUrl = deps.temporal?.uiUrl;
  return {
    ...cycleJson(cycle),
    progress: cycle.progress,
    phases: spans.map((span) => ({ phase: span.phase, firstAt: span.firstAt.toISOString(), lastAt: span.lastAt.toISOString(), rollouts: span.rollouts })),
    runUrl: uiUrl ? `${uiUrl}/namespaces/${encodeURIComponent(deps.config.temporal.namespace)}/workflows/${encodeURIComponent(cycle.id)}` : null,
  };
}

/** The latest canary; while it runs, its arms as they are now (`live`), besides the guard's last look (`state`). */
async function dashboardCanary(canary: Canary, deps: ServerDependencies) {
  const live = canary.status === "running" ? (await canaryEvidence(deps.store, deps.config, canary)).look : null;
  return { ...canaryJson(canary), live: live && { ...lookJson(canary, live), reason: live.reason } };
}

function rolloutJson(rollout: Rollout) {
  return { ...rollout, createdAt: rollout.createdAt.toISOString(), rewards: rollout.rewards.map(rewardJson) };
}

function parseQuery<T>(context: Context, schema: z.ZodObject & z.ZodType<T>): T {
  const query = context.req.query();
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) =>
    issue.code === "unrecognized_keys"
      ? `unknown query parameter ${issue.keys.map((key) => `"${key}"`).join(", ")} (known: ${Object.keys(schema.shape).join(", ")})`
      : `query parameter ${issue.path.join(".")} ${issue.message}, got ${JSON.stringify(query[String(issue.path[0])])}`,
  );
  throw new HttpError(400, "invalid_input", `${problems.join("; ")}.`);
}

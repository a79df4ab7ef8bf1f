import { analyzeAgent, parseSince } from "../../runtime/analysis.ts";
import type { RouteModule } from "../app.ts";

/** `GET /v1/analysis/:agent?since=24h`: what `agl analyze --json` prints, for dashboards and scripts. */
export const analysisRoutes: RouteModule = (app, { config, store }) => {
  app.get("/v1/analysis/:agent", async (context) => {
    const since = context.req.query("since");
    return context.json(await analyzeAgent(store, config, context.req.param("agent"), since === undefined ? undefined : parseSince(since, "query parameter since")));
  });
};

import type { RouteModule } from "./app.ts";
import { analysisRoutes } from "./routes/analysis.ts";
import { dashboardRoutes } from "./routes/dashboard.ts";
import { feedbackRoutes } from "./routes/feedback.ts";
import { openAIRoutes } from "./routes/openai.ts";
import { otlpRoutes } from "./routes/otlp.ts";
import { resourceRoutes } from "./routes/resources.ts";

/** Every route group `agl up` serves, in mount order. */
export const serverRoutes: RouteModule[] = [resourceRoutes, otlpRoutes, openAIRoutes, feedbackRoutes, analysisRoutes, dashboardRoutes];

import type { RouteModule } from "./app.ts";

/** Every route group `agl up` serves, in mount order. */
export const serverRoutes: RouteModule[] = [];

import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { Client } from "@temporalio/client";
import { Hono } from "hono";
import type { LoadedConfig } from "../config/load.ts";
import type { Store } from "../store/index.ts";
import { loginRoutes, requireToken } from "./auth.ts";
import { errorResponse } from "./http-errors.ts";

export interface ServerDependencies {
  config: LoadedConfig;
  store: Store;
  /** Where cycles run: the dashboard lists schedules through the client and links runs to the UI (the dev server's, when embedded). */
  temporal?: { client: Client; uiUrl?: string };
}

/** A group of routes mounted on the app; each feature (resources, OTLP, feedback, dashboard) is one. */
export type RouteModule = (app: Hono, deps: ServerDependencies) => void;

/**
 * The HTTP API of `agl up`: one Hono app, loopback by default. When a token is configured every request
 * must carry it (Authorization: Bearer …, or the dashboard's session cookie from /login), so binding
 * beyond loopback never exposes an open API.
 */
export function createServerApp(deps: ServerDependencies, modules: RouteModule[]): Hono {
  const app = new Hono();
  const token = deps.config.server.token;
  if (token) {
    app.use("*", requireToken(token));
    loginRoutes(app, token);
  }
  app.onError((error, context) => errorResponse(error, context));
  app.notFound((context) => context.json({ error: { code: "not_found", message: `No route for ${context.req.method} ${new URL(context.req.url).pathname}.` } }, 404));
  app.get("/healthz", (context) => context.json({ ok: true }));
  for (const mount of modules) mount(app, deps);
  return app;
}

export interface RunningHttpServer {
  url: string;
  close(): Promise<void>;
}

export async function startHttpServer(app: Hono, options: { host: string; port: number }): Promise<RunningHttpServer> {
  const server = serve({ fetch: app.fetch, hostname: options.host, port: options.port });
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(error.code === "EADDRINUSE" ? new Error(`Port ${options.port} on ${options.host} is in use: set AGL_PORT (server.port) to another port.`) : error),
    );
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import type { TestProject } from "vitest/node";
import { loadConfig } from "../config/load.ts";
import { installPath } from "../config/paths.ts";
import { connectStore } from "../store/index.ts";
import { servePGlite } from "../store/pglite-server.ts";
import { startDevServer } from "../runtime/temporal-dev-server.ts";
import { workflowBundle } from "../runtime/worker.ts";
import { postgresServer } from "./support/postgres.ts";

declare module "vitest" {
  export interface ProvidedContext {
    temporalAddress: string;
    workflowBundlePath: string;
    pgliteTemplatePath: string;
    postgresAdminUrl: string;
  }
}

/**
 * Once per test run: one Temporal dev server, one workflow bundle (the install's cached one while the
 * workflows are unchanged), one migrated PGlite template and one PostgreSQL, shared by every test file
 * (2 cores: starting them per file would dominate the run).
 */
export default async function setup(project: TestProject) {
  const scratch = mkdtempSync(join(tmpdir(), "agl-test-run-"));
  const [devServer, bundle, postgres, template] = await Promise.all([
    startDevServer({ cli: installPath(loadConfig({ env: {} }).temporal.cli), namespace: "default" }),
    workflowBundle(),
    postgresServer(process.env.AGL_TEST_DATABASE_URL),
    buildPGliteTemplate(),
  ]);
  const bundlePath = join(scratch, "workflows.js");
  writeFileSync(bundlePath, bundle.code);
  const templatePath = join(scratch, "pglite-template.tar.gz");
  writeFileSync(templatePath, template);

  project.provide("temporalAddress", devServer.address);
  project.provide("workflowBundlePath", bundlePath);
  project.provide("pgliteTemplatePath", templatePath);
  project.provide("postgresAdminUrl", postgres.adminUrl);

  return async () => {
    await devServer.stop();
    await postgres.stop();
    rmSync(scratch, { recursive: true, force: true });
  };
}

/** initdb takes ~7 s; migrated once here, every test database is a copy loaded in ~1.5 s. */
async function buildPGliteTemplate(): Promise<Buffer> {
  const db = new PGlite();
  const server = await servePGlite(db, {});
  const store = await connectStore(server.connection);
  await store.close();
  await server.close();
  const dump = await db.dumpDataDir("gzip");
  await db.close();
  return Buffer.from(await dump.arrayBuffer());
}

import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DefaultLogger } from "@temporalio/worker";
import { afterAll, expect, test } from "vitest";
import { INSTALL_ROOT } from "../../config/paths.ts";
import { cachedWorkflowBundle } from "../../runtime/workflow-bundle.ts";

const scratch = mkdtempSync(join(tmpdir(), "agl-bundle-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

test("the workflow bundle is built once per content of its sources: reused while they are unchanged, rebuilt when a file they import changes", { timeout: 120_000 }, async () => {
  // A project of two workflow files, with the SDK from agl's own node_modules.
  mkdirSync(join(scratch, "workflows"));
  symlinkSync(join(INSTALL_ROOT, "node_modules"), join(scratch, "node_modules"));
  const greeting = join(scratch, "workflows", "greeting.ts");
  writeFileSync(greeting, 'export const greeting = "hello from v1";\n');
  writeFileSync(join(scratch, "workflows", "index.ts"), 'import { greeting } from "./greeting.ts";\nexport async function hello(): Promise<string> {\n  return greeting;\n}\n');
  const cacheDir = join(scratch, "cache");
  const options = { logger: new DefaultLogger("WARN"), workflowsPath: join(scratch, "workflows", "index.ts"), cacheDir };
  const manifestWritten = () => statSync(join(cacheDir, "manifest.json")).mtimeMs;

  const first = await cachedWorkflowBundle(options);
  expect(first.code).toContain("hello from v1");
  const written = manifestWritten();

  const again = await cachedWorkflowBundle(options);
  expect(again.code).toBe(first.code);
  expect(manifestWritten(), "an unchanged project was bundled again").toBe(written);

  writeFileSync(greeting, 'export const greeting = "hello from v2";\n');
  const changed = await cachedWorkflowBundle(options);
  expect(changed.code).toContain("hello from v2");
  expect(changed.code).not.toContain("hello from v1");
  expect(manifestWritten()).not.toBe(written);
  // The replaced bundle is gone: the cache holds one bundle, whatever the number of edits.
  expect(readdirSync(cacheDir).filter((file) => file.startsWith("bundle-"))).toHaveLength(1);
});

import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleWorkflowCode, type Logger } from "@temporalio/worker";
import { INSTALL_ROOT } from "../config/paths.ts";

const MANIFEST = "manifest.json";
/** The bundler is not in the bundle, but what it makes depends on its version. */
const BUNDLER = createRequire(import.meta.url).resolve("@temporalio/worker");

export interface BundleOptions {
  logger: Logger;
  /** The workflows' entry point; default agl's own. */
  workflowsPath?: string;
  /** Default: the install's `.agl/cache/workflows/`. */
  cacheDir?: string;
}

/**
 * What a bundle was built from: every source file of ours with its sha256, every package with its
 * version. The bundle is reused while all of them are unchanged.
 */
interface BundleManifest {
  code: string;
  sources: Record<string, string>;
}

/**
 * The workflow bundle's code. Webpack takes 1.5–4 s on this machine, so a bundle is kept in a cache
 * folder with the list of what went into it (its inline source map names every file), and every later
 * process that finds those files unchanged loads it instead of bundling again.
 */
export async function cachedWorkflowBundle(options: BundleOptions): Promise<{ code: string }> {
  const cacheDir = options.cacheDir ?? join(INSTALL_ROOT, ".agl", "cache", "workflows");
  const cached = await readCached(cacheDir);
  if (cached) return cached;
  const workflowsPath = options.workflowsPath ?? fileURLToPath(new URL("../workflows/index.ts", import.meta.url));
  const { code } = await bundleWorkflowCode({ workflowsPath, logger: options.logger });
  const manifest: BundleManifest = { code: `bundle-${sha256(code).slice(0, 16)}.js`, sources: await fingerprint([...bundledSources(code), BUNDLER]) };
  // Written under temporary names and renamed, so a process reading the cache meanwhile finds the old
  // entry or the new one, whole. A read-only install only goes without the cache.
  await mkdir(cacheDir, { recursive: true })
    .then(() => writeAtomically(join(cacheDir, manifest.code), code))
    .then(() => writeAtomically(join(cacheDir, MANIFEST), JSON.stringify(manifest, null, 2)))
    .then(() => removeOtherBundles(cacheDir, manifest.code))
    .catch(() => undefined);
  return { code };
}

/** The cached bundle, if every file it was built from is unchanged; read whole, as another process may replace it next. */
async function readCached(cacheDir: string): Promise<{ code: string } | undefined> {
  try {
    const manifest = JSON.parse(await readFile(join(cacheDir, MANIFEST), "utf8")) as BundleManifest;
    const now = await fingerprint(Object.keys(manifest.sources));
    if (!Object.entries(manifest.sources).every(([source, print]) => now[source] === print)) return undefined;
    return { code: await readFile(join(cacheDir, manifest.code), "utf8") };
  } catch {
    return undefined;
  }
}

/** Our files by content; a package's files by its version (they do not change without it), under its package.json. */
async function fingerprint(sources: string[]): Promise<Record<string, string>> {
  const prints: Record<string, string> = {};
  for (const source of sources) {
    const packageRoot = source.match(/^(.*\/node_modules\/(?:@[^/]+\/)?[^/]+)\//)?.[1];
    const key = packageRoot ? join(packageRoot, "package.json") : source;
    if (key in prints) continue;
    try {
      const content = await readFile(key);
      prints[key] = packageRoot ? `version ${(JSON.parse(content.toString("utf8")) as { version: string }).version}` : `sha256 ${sha256(content)}`;
    } catch {
      prints[key] = "missing";
    }
  }
  return prints;
}

/** The files webpack put into the bundle, from its inline source map (webpack's own runtime and generated entry left out). */
function bundledSources(code: string): string[] {
  const map = code.match(/\/\/# sourceMappingURL=data:application\/json;(?:charset=utf-8;)?base64,([A-Za-z0-9+/=]+)\s*$/);
  if (!map) throw new Error("The workflow bundle has no inline source map to tell what went into it.");
  const { sources } = JSON.parse(Buffer.from(map[1]!, "base64").toString("utf8")) as { sources: string[] };
  return sources.filter((source) => isAbsolute(source) && existsSync(source));
}

async function removeOtherBundles(cacheDir: string, current: string): Promise<void> {
  for (const file of await readdir(cacheDir)) {
    if (file.startsWith("bundle-") && file !== current) await rm(join(cacheDir, file), { force: true });
  }
}

async function writeAtomically(path: string, content: string): Promise<void> {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(temporary, content);
  await rename(temporary, path);
}

function sha256(content: string | Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

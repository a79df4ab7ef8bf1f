import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { INSTALL_ROOT } from "../../config/paths.ts";

/**
 * Headless, and quiet towards the network: the browser reaches only the servers a test points it at.
 * Not @sparticuz/chromium's own `args`: they are for a single-process browser on AWS Lambda, where
 * closing one Playwright context takes the whole browser down.
 */
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Chromium from the npm package @sparticuz/chromium (a project dependency), driven by playwright-core. */
export function launchTestBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: unpackedChromium(), args: ARGS });
}

/**
 * The package ships the browser brotli-packed; its `executablePath()` unpacks it into os.tmpdir() as
 * `chromium` and from then on reuses whatever file has that name, another version's or a half-written one.
 * So it unpacks here instead, once per installed version, into a folder of this checkout: a child process
 * unpacks into a staging folder (its TMPDIR), which is renamed into place only when complete.
 */
function unpackedChromium(): string {
  const manifest = join(INSTALL_ROOT, "node_modules/@sparticuz/chromium/package.json");
  if (!existsSync(manifest)) throw new Error(`The browser tests run Chromium from the npm package @sparticuz/chromium, which is not installed (${manifest} is missing): run \`npm install\`.`);
  const { version } = JSON.parse(readFileSync(manifest, "utf8")) as { version: string };
  const cache = join(INSTALL_ROOT, "node_modules/.cache/agl-chromium");
  const target = join(cache, version);
  const executable = join(target, "chromium");
  if (existsSync(executable)) return executable;
  mkdirSync(cache, { recursive: true });
  const staging = mkdtempSync(join(cache, `${version}-unpacking-`));
  try {
    const unpack = 'const { default: chromium } = await import("@sparticuz/chromium"); await chromium.executablePath();';
    execFileSync(process.execPath, ["--input-type=module", "--eval", unpack], { cwd: INSTALL_ROOT, env: { ...process.env, TMPDIR: staging }, stdio: ["ignore", "ignore", "pipe"] });
    renameSync(staging, target);
  } catch (error) {
    // Two runs unpacking at once: the one whose rename lost uses the winner's copy.
    if (!existsSync(executable)) throw error;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return executable;
}

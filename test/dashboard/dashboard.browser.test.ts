import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { LoadedConfig } from "../../config/load.ts";
import { canaryEvidence, lookJson } from "../../runtime/canary-evidence.ts";
import { guardSettings } from "../../runtime/canaries.ts";
import { changeSchedule, createSchedule } from "../../runtime/schedules.ts";
import { createServerApp, type RunningHttpServer, startHttpServer } from "../../server/app.ts";
import { serverRoutes } from "../../server/routes.ts";
import { agl, cleanEnv, json, removeDir, ROOT, tempDir } from "../cli/support.ts";
import { launchTestBrowser } from "../support/browser.ts";
import { openTestStore, type TestStore } from "../support/stores.ts";
import { connectClient, testConfig } from "../support/temporal.ts";
import { RUNNING_CYCLE, type Seeded, seedDashboard, V2_OLD_LINE, V3_NEW_LINE } from "./seed.ts";

const UI_URL = "http://127.0.0.1:8233";
const TOKEN = "browser-token-0123456789";
const ARTIFACTS = join(ROOT, "test-results", "dashboard");
const LAPTOP = { width: 1366, height: 900 };
const PHONE = { width: 390, height: 844 };

let db: TestStore;
let seeded: Seeded;
let config: LoadedConfig;
let temporal: Awaited<ReturnType<typeof connectClient>>;
let server: RunningHttpServer;
let guarded: RunningHttpServer;
let browser: Browser;
let laptop: BrowserContext;
let page: Page;
let cliData: string;
const scheduleId = `dashboard-${randomBytes(3).toString("hex")}`;
const requested: string[] = [];

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  cliData = tempDir("agl-dashboard-cli-");
  // PostgreSQL: the CLI subprocess that checks the rollback reaches it directly.
  db = await openTestStore("postgres");
  seeded = await seedDashboard(db.store);
  config = testConfig();
  temporal = await connectClient(config);
  await createSchedule({ client: temporal.client, store: db.store, config, request: { id: scheduleId, agent: seeded.agent, dataset: "posts", cron: "0 3 1 1 *" } });
  const serve = (token?: string) =>
    startHttpServer(createServerApp({ config: token ? testConfig({ server: { token } }) : config, store: db.store, temporal: { client: temporal.client, uiUrl: UI_URL } }, serverRoutes), { host: "127.0.0.1", port: 0 });
  // launch() gives the browser a fresh temporary profile of its own.
  [server, guarded, browser] = await Promise.all([serve(), serve(TOKEN), launchTestBrowser()]);
  laptop = await browser.newContext({ viewport: LAPTOP });
  laptop.on("request", (request) => requested.push(request.url()));
  page = await laptop.newPage();
  await page.goto(server.url);
  await page.locator("[data-chart=versions] svg").waitFor();
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
  await guarded?.close();
  await changeSchedule(temporal.client, scheduleId, { kind: "delete" }).catch(() => undefined);
  await temporal?.close();
  await db?.close();
  removeDir(cliData);
});

/** What the CLI, a separate process reading the same database, says the label points at. */
async function labelsFromCli(): Promise<Record<string, number>> {
  const result = await agl(["prompts", "list", seeded.agent, "--json"], { env: cleanEnv({ DATABASE_URL: db.connection as string, AGL_DATA_DIR: cliData }) });
  expect(result.exitCode, result.stderr).toBe(0);
  return Object.fromEntries(json<{ version: number; labels: string[] }[]>(result).flatMap((version) => version.labels.map((label) => [label, version.version])));
}

describe("the dashboard in a real browser", () => {
  test("the learning curve has one point per scored version and per cycle; cycles link to the Temporal UI; schedules show their spec", async () => {
    await expect.poll(() => page.locator("[data-chart=versions] circle[data-series=reward]").count()).toBe(seeded.scoredVersions.length);
    expect(await page.locator("[data-chart=cycles] circle[data-series=reward]").count()).toBe(seeded.scoredCycles.length);
    // Each deployed cycle's test-split score, the number to believe, with its band.
    expect(await page.locator("[data-chart=cycles] circle[data-series=test]").count()).toBe(seeded.deployedCycles);
    expect(await page.locator("[data-chart=cycles] [data-series=test] path.band").count()).toBe(1);
    expect(await page.locator("[data-chart=versions] circle[data-series=field-category]").count()).toBe(seeded.scoredVersions.length);
    expect(await page.locator("[data-chart=versions] [data-series=reward] path.band").count()).toBe(1);

    const cycle = seeded.scoredCycles[0]!;
    expect(await page.locator(`tr[data-cycle="${cycle}"] a.run-link`).getAttribute("href")).toBe(`${UI_URL}/namespaces/default/workflows/${cycle}`);
    expect(await page.locator(`tr[data-cycle="${cycle}"]`).innerText()).toMatch(/deployed v2[\s\S]*collect → train → validate → deploy/);

    const schedule = page.locator(`tr[data-schedule="${scheduleId}"]`);
    await schedule.waitFor();
    expect(await schedule.innerText()).toContain("0 3 1 1 *");
    expect(await schedule.locator("time").count()).toBeGreaterThan(0);
    await page.screenshot({ path: join(ARTIFACTS, "laptop.png"), fullPage: true });
  });

  test("the diff shows the changed line side by side", async () => {
    await page.selectOption("#diff-from", "2");
    await page.selectOption("#diff-to", "3");
    const changed = page.locator('[data-component="categories"] table.diff tr', { has: page.locator("td.text.added") });
    await changed.first().waitFor();
    expect(await changed.locator("td.text.removed").innerText()).toBe(V2_OLD_LINE);
    expect(await changed.locator("td.text.added").innerText()).toBe(V3_NEW_LINE);
  });

  test("the rollouts filter by source, and a rollout opens to its input, output and rewards with reasons", async () => {
    await page.selectOption("#rollout-filters select[name=source]", "otlp");
    await expect.poll(() => page.locator("tr.rollout").count()).toBe(6);
    await page.fill("#rollout-filters input[name=max]", "0.5");
    await expect.poll(() => page.locator("tr.rollout").count()).toBe(1);
    await page.locator('tr[data-rollout="ro-otlp-2"] button').click();
    const detail = await page.locator("tr.rollout-detail").innerText();
    expect(detail).toContain("Rain again, cancelling the picnic");
    expect(detail).toContain('"sentiment": "negative"');
    expect(detail).toMatch(/proxy:thumbs\s+0\.00\s+user gave a thumbs down/);
  });

  test("a rollback from the page moves the label (as the CLI sees it) and lands in the audit trail", async () => {
    expect((await labelsFromCli()).production).toBe(3);
    await page.locator('tr[data-version="2"] button[data-action=rollback]').click();
    await page.fill("#label-form textarea[name=reason]", "v3 misfiles funding news");
    await page.click("#label-submit");
    await expect.poll(() => page.locator("#notice").innerText()).toBe("production now points at v2 (rolled back from v3).");
    expect((await labelsFromCli()).production).toBe(2);
    const latest = await page.locator("#history tbody tr").first().innerText();
    expect(latest).toMatch(/rolled back[\s\S]*production v3 → v2[\s\S]*dashboard[\s\S]*v3 misfiles funding news/);
    expect(await page.locator(".production-version").innerText()).toBe("v2");
  });

  test("bad requests show a readable error: a version that does not exist, a lost compare-and-set", async () => {
    await page.locator('tr[data-version="1"] button[data-action=rollback]').click();
    await page.fill("#label-form input[name=version]", "99");
    await page.fill("#label-form textarea[name=reason]", "typo");
    await page.click("#label-submit");
    await expect.poll(() => page.locator("#label-error").innerText()).toBe('Resource "post-analyzer" has no version 99 (versions 1-4 exist).');

    // Someone else moves production while the dialog is open: the page's compare-and-set loses.
    await db.store.resources.moveLabel({ name: seeded.resource, label: "production", toVersion: 3, expectedVersion: 2, actor: "user:bob", reason: "v2 was fine, v3 is better" });
    await page.fill("#label-form input[name=version]", "1");
    await page.click("#label-submit");
    await expect
      .poll(() => page.locator("#label-error").innerText())
      .toBe('Label "production" of "post-analyzer" points at version 3, not version 2 as expected: someone moved it first. Nothing was changed.');
    await page.click("#label-cancel");
    expect((await labelsFromCli()).production).toBe(3);
    // The move made elsewhere reaches the page by itself, without a reload.
    await expect.poll(() => page.locator(".production-version").innerText(), { timeout: 6_000 }).toBe("v3");
  });

  test("a cycle that finishes elsewhere shows its outcome within seconds, without a reload", async () => {
    const row = page.locator(`tr[data-cycle="${RUNNING_CYCLE}"]`);
    expect(await row.innerText()).toContain("collect 5/12");
    await db.store.cycles.update(RUNNING_CYCLE, { phase: "done", outcome: "kept", outcomeDetail: "no candidate beat v3 by the margin 0.02", finished: true });
    await expect.poll(() => row.innerText(), { timeout: 6_000 }).toMatch(/kept v3[\s\S]*no candidate beat v3/);
  });

  test("a version deployed moments ago, which no rollout has run yet, shows the validation score that deployed it", async () => {
    const v3 = await db.store.resources.getVersion(seeded.resource, 3);
    const examples = 'Post: "Our CI pipeline finally runs in five minutes" -> {"category": "technology", "sentiment": "positive"}';
    await db.store.resources.publish({
      name: seeded.resource,
      content: { ...v3.content, components: { ...v3.content.components, examples } },
      parentVersion: 3,
      createdBy: "cycle:cy-post-analyzer-manual-5",
      metrics: { validation: { contender: "r1c2", meanReward: 0.912, rollouts: 8 } },
    });
    await expect.poll(() => page.locator('tr[data-version="5"] .deploy-score').innerText(), { timeout: 6_000 }).toBe("0.912 at deploy");
    expect(await page.locator('tr[data-version="4"]').innerText()).toContain("–");
  });

  test("at phone width nothing overflows sideways", async () => {
    const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
    phone.on("request", (request) => requested.push(request.url()));
    const small = await phone.newPage();
    await small.goto(server.url);
    await small.locator("[data-chart=cycles] circle").first().waitFor();
    await small.locator("#rollouts tr.rollout").first().waitFor();
    // A string runs in the page: the test's own tsconfig has no DOM types.
    const widths = await small.evaluate<{ page: number; viewport: number }>("({ page: document.documentElement.scrollWidth, viewport: document.documentElement.clientWidth })");
    expect(widths.page).toBeLessThanOrEqual(widths.viewport);
    await small.screenshot({ path: join(ARTIFACTS, "phone.png"), fullPage: true });
    await phone.close();
  });

  test("with a token the page asks to sign in, refuses a wrong token, and opens with the right one (HttpOnly, SameSite=Strict)", async () => {
    const visitor = await browser.newContext({ viewport: LAPTOP });
    visitor.on("request", (request) => requested.push(request.url()));
    const login = await visitor.newPage();
    const refused = await login.goto(guarded.url);
    expect(refused?.status()).toBe(401);
    await login.fill("input[name=token]", "not-the-token-0123456789");
    await login.click("button[type=submit]");
    expect(await login.locator("p.problem").innerText()).toBe("That token is not this server's AGL_TOKEN.");
    await login.fill("input[name=token]", TOKEN);
    await login.click("button[type=submit]");
    await login.locator("[data-chart=versions] circle").first().waitFor();
    expect(new URL(login.url()).pathname).toBe("/");
    expect(await visitor.cookies()).toEqual([expect.objectContaining({ name: "agl_session", httpOnly: true, sameSite: "Strict" })]);
    await visitor.close();
  });

  test("a running canary shows both arms live with their intervals and the guard's state; its rollback elsewhere shows without a reload", async () => {
    const settings = { ...guardSettings(config), minRollouts: 20 };
    const { canary } = await db.store.canaries.start({ id: "can-dashboard", agent: seeded.agent, resource: seeded.resource, version: 4, weight: 25, actor: "user:alice", settings });
    // Live traffic on both arms, each run rated by its user: production mostly right, the canary half the time.
    const runs = Array.from({ length: 60 }, (_, i) => {
      const arm = i % 2 === 0 ? "production" : "canary";
      return { id: `ro-arm-${i}`, arm, version: arm === "canary" ? 4 : 3, up: arm === "production" ? i % 10 !== 0 : i % 4 === 1 };
    });
    await db.store.rollouts.insertMany(
      runs.map((run) => ({
        id: run.id, agent: seeded.agent, source: "otlp", dataset: null, taskId: null, resourceName: seeded.resource, resourceVersion: run.version, candidateId: null, cycleId: null, phase: null,
        input: { content: "a post" }, output: { category: "general", sentiment: "neutral" }, status: "succeeded", error: null, latencyMs: 40, model: "fake", inputTokens: 1, outputTokens: 1, traceId: null, arm: run.arm,
      })),
    );
    await db.store.rollouts.addRewards(runs.map((run) => ({ rolloutId: run.id, scorer: "human", value: run.up ? 1 : -1, reason: run.up ? "thumbs up" : "thumbs down", details: {}, dedupeKey: "fb" })));
    const { look } = await canaryEvidence(db.store, config, canary);
    await db.store.canaries.recordState(canary.id, { look: 1, reason: `guard ${canary.id}, look 1: ${look.reason}`, ...lookJson(canary, look) });

    const section = page.locator("#canary");
    await expect.poll(() => section.locator(`[data-canary="${canary.id}"]`).count(), { timeout: 6_000 }).toBe(1);
    expect(await section.locator("[data-canary]").innerText()).toMatch(/running\s+v4 serves 25% of keyed traffic against production v3/);
    expect(await section.locator('tr[data-arm="production"]').innerText()).toMatch(/production\s+v3\s+30\s+30\s+0\.600 \[0\.29\d, 0\.90\d\]/);
    expect(await section.locator('tr[data-arm="canary"]').innerText()).toMatch(/canary\s+v4\s+30\s+30\s+0\.000 \[-0\.3[78]\d, 0\.3[78]\d\]/);
    expect(await section.locator("svg.interval rect.band").count()).toBe(2);
    expect(await section.locator('[data-difference="reward"]').innerText()).toMatch(/^reward: -0\.600 \[-1\.\d{3}, 0\.\d{3}\]$/);
    expect(await section.locator("[data-guard]").innerText()).toMatch(/^Guard: look 1, continue\. guard can-dashboard, look 1: reward: canary 0\.000 \[.*\] \(n=30\) vs production 0\.600 \[.*\] \(n=30\), difference -0\.600, always-valid 97\.5% interval \[.*\] holds 0 \(mSPRT/);
    await section.screenshot({ path: join(ARTIFACTS, "canary.png") });

    await db.store.canaries.conclude({ id: canary.id, outcome: "rolled_back", actor: `guard:${canary.id}`, reason: `guard ${canary.id}, look 2: the canary is worse` });
    await expect.poll(() => section.locator('[data-decision="rolled_back"]').innerText(), { timeout: 6_000 }).toBe(`Rolled back by guard:${canary.id}: guard ${canary.id}, look 2: the canary is worse`);
    expect(await page.locator("#history tbody tr").first().innerText()).toMatch(/canary rolled back[\s\S]*canary v4 → –[\s\S]*guard:can-dashboard/);
  });

  test("everything the browser loaded came from our servers", () => {
    const ours = [server.url, guarded.url];
    expect(requested.length).toBeGreaterThan(10);
    expect(requested.filter((url) => !ours.some((origin) => url.startsWith(`${origin}/`)))).toEqual([]);
  });
});

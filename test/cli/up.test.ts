import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { freePort } from "../../runtime/temporal-dev-server.ts";
import { agl, embeddedEnv, processesWith, removeDir, spawnAgl, tempDir, waitFor } from "./support.ts";

const home = tempDir("agl-cli-up-");
afterAll(() => removeDir(home));

test("agl up serves the API with a worker until stopped; a second one is refused; stopping leaves nothing running", { timeout: 120_000 }, async () => {
  const port = await freePort();
  const env = embeddedEnv(join(home, "data"), { AGL_PORT: String(port) });
  const up = spawnAgl(["up"], { env, cwd: home, timeoutMs: 100_000 });
  const url = `http://127.0.0.1:${port}`;
  await waitFor("agl up to answer", async () => ((await fetch(`${url}/healthz`).catch(() => undefined))?.ok ? true : undefined), 60_000);
  expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ ok: true });
  const missing = await fetch(`${url}/no-such-route`);
  expect(missing.status).toBe(404);
  expect(await missing.json()).toEqual({ error: { code: "not_found", message: "No route for GET /no-such-route." } });

  const second = await agl(["up"], { env, cwd: home });
  expect(second.exitCode).toBe(2);
  expect(second.stderr).toContain(`agl up already runs (pid ${up.pid}) at ${url}`);

  // A cycle started from another terminal runs on agl up's worker: this command starts none of its own.
  const cycle = await agl(["cycle", "start", "--agent", "post-analyzer", "--dataset", "posts", "--wait", "--json"], { env, cwd: home, timeoutMs: 90_000 });
  expect(cycle.exitCode).toBe(0);
  expect(cycle.stderr).not.toContain("running one in this process");
  // The fake model on the bundled posts deploys the same candidate on every run.
  expect(JSON.parse(cycle.stdout)).toMatchObject({
    outcome: "deployed",
    incumbentVersion: 1,
    deployedVersion: 2,
    collect: { rollouts: 180, failed: 0 },
    baseline: { rollouts: 60, failed: 0 },
    best: { rollouts: 60, failed: 0 },
  });

  up.kill("SIGTERM");
  const stopped = await up;
  expect(stopped.stderr).toContain(`agl up: ${url}`);
  expect(processesWith("start-dev", join(home, "data", "temporal", "temporal.db"))).toEqual([]);
  expect(await fetch(`${url}/healthz`).catch(() => "refused")).toBe("refused");
});

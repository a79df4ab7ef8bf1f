import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { claimDataFolder, findOwner, type OwnerHandle, type Ownership } from "../../runtime/ownership.ts";
import { INSTALL_ROOT } from "../../config/paths.ts";

const NODE = join(INSTALL_ROOT, "node_modules", ".bin", "node");
const CLAIM_FIXTURE = fileURLToPath(new URL("../fixtures/claim-data-folder.ts", import.meta.url));

let scratch: string;
let folderNumber = 0;
const handles: OwnerHandle[] = [];
const children: ChildProcess[] = [];

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "agl-owner-"));
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await Promise.all(handles.splice(0).map((handle) => handle.release()));
});

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

function freshFolder(): string {
  return join(scratch, `data-${++folderNumber}`);
}

async function claim(dataPath: string, command: string): Promise<Ownership> {
  const ownership = await claimDataFolder(dataPath, command);
  if (ownership.owned) handles.push(ownership.handle);
  return ownership;
}

function owned(ownership: Ownership): OwnerHandle {
  if (!ownership.owned) throw new Error(`expected to own the folder, but pid ${ownership.info.pid} (${ownership.info.command}) does`);
  return ownership.handle;
}

/** Starts the fixture in its own process and resolves once it says it owns the folder (then it is busy `busyMs`). */
async function startOwnerProcess(dataPath: string, busyMs = 0): Promise<ChildProcess> {
  const child = spawn(NODE, [CLAIM_FIXTURE, dataPath, String(busyMs)], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (chunk) => {
      stdout += chunk;
      if (stdout.includes("ready\n")) resolve();
    });
    child.once("exit", (code, signal) => reject(new Error(`the owner process exited (${code ?? signal}) before it was ready: ${stderr}`)));
  });
  return child;
}

describe("claiming a data folder", () => {
  test("an unowned folder has no owner", async () => {
    const dataPath = freshFolder();
    mkdirSync(dataPath);
    expect(await findOwner(dataPath)).toBeUndefined();
  });

  test("a folder that does not exist yet has no owner", async () => {
    const dataPath = freshFolder();
    expect(await findOwner(dataPath)).toBeUndefined();
    expect(existsSync(dataPath)).toBe(false);
  });

  test("the first claim owns the folder (creating it) and a second claim gets the owner's info", async () => {
    const dataPath = freshFolder();
    const first = owned(await claim(dataPath, "agl up"));
    expect(existsSync(dataPath)).toBe(true);
    expect(first.info).toMatchObject({ pid: process.pid, command: "agl up", ready: false, worker: false });

    const second = await claim(dataPath, "agl cycle start");
    expect(second.owned).toBe(false);
    if (second.owned) return;
    expect(second.info).toEqual(first.info);
    expect(await findOwner(dataPath)).toEqual(first.info);
  });

  test("services published with update are what the next claimant and findOwner see", async () => {
    const dataPath = freshFolder();
    const owner = owned(await claim(dataPath, "agl up"));
    const services = {
      ready: true,
      worker: true,
      store: { host: "127.0.0.1", port: 54321 },
      temporal: { address: "127.0.0.1:7233", uiUrl: "http://127.0.0.1:8233" },
      http: { url: "http://127.0.0.1:4318" },
    };
    owner.update(services);

    const second = await claim(dataPath, "agl prompts list");
    expect(second).toMatchObject({ owned: false, info: { pid: process.pid, command: "agl up", ...services } });
    expect(await findOwner(dataPath)).toMatchObject(services);
  });

  test("release lets the next claim own the folder", async () => {
    const dataPath = freshFolder();
    const first = owned(await claim(dataPath, "first"));
    await first.release();
    handles.splice(handles.indexOf(first), 1);
    expect(await findOwner(dataPath)).toBeUndefined();

    const next = owned(await claim(dataPath, "next"));
    expect(next.info.command).toBe("next");
    expect(await findOwner(dataPath)).toMatchObject({ command: "next" });
  });

  test("the same folder reached through another path has the same owner", async () => {
    const dataPath = freshFolder();
    owned(await claim(dataPath, "agl up"));
    const link = `${dataPath}-link`;
    symlinkSync(dataPath, link);
    expect(await claim(link, "via link")).toMatchObject({ owned: false, info: { command: "agl up" } });
    expect(await claim(join(dataPath, ".", "sub", ".."), "via dots")).toMatchObject({ owned: false, info: { command: "agl up" } });
  });

  test("different folders are owned independently", async () => {
    owned(await claim(freshFolder(), "one"));
    owned(await claim(freshFolder(), "two"));
  });
});

describe("an owner in another process", () => {
  test("is found by its claim, and a SIGKILL frees the folder for a new owner", async () => {
    const dataPath = freshFolder();
    const child = await startOwnerProcess(dataPath);

    const contender = await claim(dataPath, "agl cycle start");
    expect(contender).toMatchObject({ owned: false, info: { pid: child.pid, command: "fixture-owner", ready: true, worker: true } });

    const exited = once(child, "exit");
    child.kill("SIGKILL");
    const [, signal] = await exited;
    expect(signal).toBe("SIGKILL");

    // No cleanup ran in the killed process: the kernel freed its abstract socket.
    expect(await findOwner(dataPath)).toBeUndefined();
    const next = owned(await claim(dataPath, "after the crash"));
    expect(next.info.pid).toBe(process.pid);
  });

  test("an owner too busy to answer for a while is waited for, not reported as not answering", async () => {
    const dataPath = freshFolder();
    // Longer than the three 5 s tries a claim used to give a silent owner before it failed.
    const child = await startOwnerProcess(dataPath, 20_000);
    const contender = await claim(dataPath, "agl submit");
    expect(contender).toMatchObject({ owned: false, info: { pid: child.pid, command: "fixture-owner" } });
  }, 90_000);

  test("a second process cannot take a folder this process owns", async () => {
    const dataPath = freshFolder();
    owned(await claim(dataPath, "agl up"));
    const child = spawn(NODE, [CLAIM_FIXTURE, dataPath], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const [code] = await once(child, "exit");
    expect(code).toBe(3);
    expect(stderr).toContain(`not the owner: pid ${process.pid} owns`);
  });
});

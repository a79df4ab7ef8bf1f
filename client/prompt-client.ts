import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CANARY, PRODUCTION, type ResourceVersionJson } from "../store/resources.ts";
import { type Arm, assignArm, type CanarySplit } from "./canary-assignment.ts";

/** A prompt version as the resources API serves it (`GET /v1/resources/:name`). */
export interface PromptResource extends ResourceVersionJson {
  rendered?: string;
  /** Read by label: the label that served it, and the resource's running canary (null when none). */
  label?: string;
  canary?: CanarySplit | null;
}

/**
 * How the copy served was obtained:
 * - `fresh`: fetched (or confirmed by a 304) during this call, or by a revalidation it waited for;
 * - `cached`: from memory, confirmed by the server less than `ttlMs` ago;
 * - `stale`: from memory, older than `ttlMs`; the refresh did not answer within `revalidateWaitMs` and goes on in the background;
 * - `fallback`: the server could not be reached (or answered with an error) at the last try: the
 *   last-known-good copy, from memory or from disk.
 */
export type Freshness = "fresh" | "cached" | "stale" | "fallback";

export interface ServedPrompt {
  resource: PromptResource;
  /** The version served, which the caller records with whatever it produced with it. */
  version: number;
  freshness: Freshness;
  /** When the server last confirmed this copy, or (fallback) when it was last tried, in ms since the epoch. */
  checkedAt: number;
  /** Why the server could not give a current copy, when `freshness` is `fallback`. */
  error?: string;
  /** The arm of the traffic split that served it, for `production` reads (keyed or not); null for other labels and fixed versions. Record it with the rollout. */
  arm: Arm | null;
}

export interface PromptSelector {
  /** Default `production`. */
  label?: string;
  /** A fixed version instead of a label: versions are immutable, so it is never fetched twice. */
  version?: number;
  /**
   * A user or session id: while a canary runs, the split sends a fixed share of keys to it, the same
   * keys every time (the server's `?key=` does the same). Only with the `production` label.
   */
  key?: string;
}

export interface PromptClientOptions {
  /** Where `agl up` serves the API, e.g. `http://127.0.0.1:4318`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when the server has a token. */
  token?: string;
  /** How long a copy is served without asking the server again; default 10 s. */
  ttlMs?: number;
  /** Where last-known-good copies are kept across restarts; default `<dataDir>/prompt-cache`. */
  cacheDir?: string;
  /** A request slower than this counts as the server being unreachable; default 2 s. */
  timeoutMs?: number;
  /** After the time limit, how long a get waits for the revalidation before serving the stale copy; default 250 ms. */
  revalidateWaitMs?: number;
  fetch?: typeof fetch;
  /** Called when a load or a background refresh brings a different version than the one held (a deploy, a rollback). */
  onVersionChange?: (change: { name: string; selector: string; from: number; to: number }) => void;
  /**
   * Subscribe to each resource's change events (`GET /v1/resources/:name/events`) and re-read the moment a
   * label moves; default true. Without a subscription (refused, unreachable, or off) the time limit alone applies.
   */
  subscribe?: boolean;
}

export interface PromptClient {
  get(name: string, selector?: PromptSelector): Promise<ServedPrompt>;
  /** Whether a change-event subscription for `name` is open now (label moves then reach this client at once). */
  subscribed(name: string): boolean;
  /** Ends the change-event subscriptions; gets still work, on the time limit. */
  close(): void;
}

/** Neither the server nor any cached or saved copy could give the prompt. */
export class PromptUnavailableError extends Error {
  override name = "PromptUnavailableError";
}

const DEFAULT_PROMPT_TTL_MS = 10_000;
const DEFAULT_TIMEOUT_MS = 2_000;
const DEFAULT_REVALIDATE_WAIT_MS = 250;
const RESUBSCRIBE_FIRST_MS = 500;
const RESUBSCRIBE_MAX_MS = 30_000;
const DISK_FORMAT = 1;

interface Entry {
  name: string;
  selector: string;
  path: string;
  resource: PromptResource;
  etag: string;
  checkedAt: number;
  /** Set while the server cannot be reached; cleared by the next good answer. */
  error?: string;
  immutable: boolean;
  refreshing?: Promise<void>;
}

type Answer = { status: 200; resource: PromptResource; etag: string } | { status: 304 };

/**
 * The resource client agents use to read their prompt: a time-limited in-memory cache with
 * stale-while-revalidate (once it holds a copy, a get waits at most `revalidateWaitMs` for the server), and a
 * last-known-good copy on disk, so neither an outage of the server nor a restart of the agent during
 * one takes the agent down. It throws only when it has never had a copy at all.
 */
export function createPromptClient(options: PromptClientOptions): PromptClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const ttlMs = options.ttlMs ?? DEFAULT_PROMPT_TTL_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const revalidateWaitMs = options.revalidateWaitMs ?? DEFAULT_REVALIDATE_WAIT_MS;
  const fetchImpl = options.fetch ?? fetch;
  const cacheDir = options.cacheDir ?? join(process.env.AGL_DATA_DIR || ".agl", "prompt-cache");
  const entries = new Map<string, Entry>();
  const loading = new Map<string, Promise<Omit<ServedPrompt, "arm">>>();
  const subscriptions = new Map<string, AbortController>();
  const live = new Set<string>();

  async function get(name: string, selector: PromptSelector = {}): Promise<ServedPrompt> {
    if (options.subscribe !== false) subscribe(name);
    const readsProduction = selector.version === undefined && (selector.label ?? PRODUCTION) === PRODUCTION;
    if (selector.key !== undefined) {
      if (!readsProduction) throw new Error(`A key picks between production and its canary; it cannot be combined with ${selector.version !== undefined ? `version ${selector.version}` : `label ${selector.label}`}.`);
      return keyed(name, selector.key);
    }
    const served = await getSelected(name, selector);
    return { ...served, arm: readsProduction ? "production" : null };
  }

  /** Production, unless the running canary's split assigns the key to the canary and the canary's copy is the split's version. */
  async function keyed(name: string, key: string): Promise<ServedPrompt> {
    const production = await getSelected(name, {});
    const split = production.resource.canary ?? null;
    if (assignArm(name, split, key) === "production") return { ...production, arm: "production" };
    const canaryKey = selectorKey(name, { label: CANARY });
    const canaryEntry = entries.get(canaryKey);
    // A copy of an earlier canary: ask again now rather than serve another version under this canary's name.
    if (canaryEntry && canaryEntry.resource.version !== split!.version) canaryEntry.checkedAt = 0;
    const canary = await getSelected(name, { label: CANARY }).catch(() => undefined);
    if (!canary || canary.version !== split!.version) return { ...production, arm: "production" };
    return { ...canary, arm: "canary" };
  }

  async function getSelected(name: string, selector: PromptSelector): Promise<Omit<ServedPrompt, "arm">> {
    const key = selectorKey(name, selector);
    const entry = entries.get(key);
    if (!entry) {
      let load = loading.get(key);
      if (!load) {
        load = loadFirst(name, selector, key).finally(() => loading.delete(key));
        loading.set(key, load);
      }
      return load;
    }
    const now = Date.now();
    if ((entry.immutable && !entry.error) || now - entry.checkedAt < ttlMs) return serve(entry, entry.error ? "fallback" : "cached");
    entry.refreshing ??= refresh(entry).finally(() => (entry.refreshing = undefined));
    // A server that answers at once hands this very request the current version (a rollback is live on
    // the first request after the cache time); a slow one never holds it up for longer than the wait.
    const refreshed = await Promise.race([entry.refreshing.then(() => true), sleep(revalidateWaitMs, false, { ref: false })]);
    if (refreshed && !entry.error) return serve(entry, "fresh");
    return serve(entry, entry.error ? "fallback" : "stale");
  }

  /** The first get of a key in this process: the server, else the copy saved on disk by an earlier run. */
  async function loadFirst(name: string, selector: PromptSelector, key: string): Promise<Omit<ServedPrompt, "arm">> {
    const path = pathOf(name, selector);
    const saved = await readSaved(key);
    const base = { name, selector: key, path, immutable: selector.version !== undefined };
    try {
      const answer = await request(path, saved?.etag);
      // A 304 can only answer the saved copy's ETag: the saved copy is current.
      const current = answer.status === 200 ? answer : saved!;
      const entry: Entry = { ...base, resource: current.resource, etag: current.etag, checkedAt: Date.now() };
      if (answer.status === 200) await save(key, entry);
      entries.set(key, entry);
      if (saved && saved.resource.version !== entry.resource.version) notify(entry, saved.resource.version);
      return serve(entry, "fresh");
    } catch (error) {
      const reason = (error as Error).message;
      if (!saved) throw new PromptUnavailableError(`Prompt ${key} is unavailable: ${reason}; and no copy was saved in ${cacheDir} by an earlier run.`);
      const entry: Entry = { ...base, resource: saved.resource, etag: saved.etag, checkedAt: Date.now(), error: reason };
      entries.set(key, entry);
      return serve(entry, "fallback");
    }
  }

  async function refresh(entry: Entry): Promise<void> {
    try {
      const answer = await request(entry.path, entry.etag);
      entry.checkedAt = Date.now();
      entry.error = undefined;
      if (answer.status === 200 && answer.etag !== entry.etag) {
        const previous = entry.resource.version;
        entry.resource = answer.resource;
        entry.etag = answer.etag;
        await save(entry.selector, entry);
        if (previous !== entry.resource.version) notify(entry, previous);
      }
    } catch (error) {
      // Keep serving the last good copy; try again once the time limit has passed once more.
      entry.checkedAt = Date.now();
      entry.error = (error as Error).message;
    }
  }

  async function request(path: string, etag: string | undefined): Promise<Answer> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (etag) headers["if-none-match"] = etag;
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let response: Response;
    try {
      response = await fetchImpl(`${baseUrl}${path}`, { headers, signal: AbortSignal.timeout(timeoutMs) });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code;
      throw new Error(`${baseUrl} cannot be reached (${cause ?? (error as Error).message})`);
    }
    if (response.status === 304) return { status: 304 };
    const body = (await response.json().catch(() => undefined)) as { error?: { message?: string } } | PromptResource | undefined;
    if (!response.ok || !body || !("version" in body)) {
      const message = body && "error" in body ? body.error?.message : undefined;
      throw new Error(`${baseUrl}${path} answered ${response.status}${message ? `: ${message}` : ""}`);
    }
    return { status: 200, resource: body, etag: response.headers.get("etag") ?? "" };
  }

  async function readSaved(key: string): Promise<{ resource: PromptResource; etag: string } | undefined> {
    try {
      const saved = JSON.parse(await readFile(fileOf(key), "utf8")) as { format?: number; resource?: PromptResource; etag?: string };
      if (saved.format !== DISK_FORMAT || typeof saved.etag !== "string" || typeof saved.resource?.version !== "number") return undefined;
      return { resource: saved.resource, etag: saved.etag };
    } catch {
      return undefined;
    }
  }

  /** Write-then-rename: a reader (another agent process) never sees half a file. */
  async function save(key: string, entry: Entry): Promise<void> {
    const file = fileOf(key);
    const temporary = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      await mkdir(cacheDir, { recursive: true });
      await writeFile(temporary, JSON.stringify({ format: DISK_FORMAT, etag: entry.etag, resource: entry.resource, savedAt: new Date().toISOString() }));
      await rename(temporary, file);
    } catch {
      // A read-only or full disk costs the fallback copy, never the answer the agent is waiting for.
    }
  }

  function fileOf(key: string): string {
    return join(cacheDir, `${encodeURIComponent(key)}.json`);
  }

  function notify(entry: Entry, from: number): void {
    options.onVersionChange?.({ name: entry.name, selector: entry.selector, from, to: entry.resource.version });
  }

  /** Re-reads every copy of `name` now, in the background: a change event said a label moved. */
  function refreshNow(name: string): void {
    for (const entry of entries.values()) {
      if (entry.name !== name || entry.immutable) continue;
      entry.refreshing ??= refresh(entry).finally(() => (entry.refreshing = undefined));
    }
  }

  /** One event stream per resource, reopened with backoff when it breaks; while it is down the time limit alone applies. */
  function subscribe(name: string): void {
    if (subscriptions.has(name)) return;
    const controller = new AbortController();
    subscriptions.set(name, controller);
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    void (async () => {
      let connectedBefore = false;
      for (let pause = RESUBSCRIBE_FIRST_MS; !controller.signal.aborted; pause = Math.min(2 * pause, RESUBSCRIBE_MAX_MS)) {
        try {
          const response = await fetchImpl(`${baseUrl}/v1/resources/${encodeURIComponent(name)}/events`, { headers, signal: controller.signal });
          if (!response.ok || !response.body) throw new Error(`answered ${response.status}`);
          for await (const event of serverSentEvents(response.body)) {
            if (event === "ready") {
              live.add(name);
              pause = RESUBSCRIBE_FIRST_MS;
              // Changes made while the stream was down were not announced.
              if (connectedBefore) refreshNow(name);
              connectedBefore = true;
            } else if (event === "changed") refreshNow(name);
          }
        } catch {
          // Refused, unreachable or cut: the time limit covers until the stream is back.
        }
        live.delete(name);
        await sleep(pause, undefined, { ref: false, signal: controller.signal }).catch(() => undefined);
      }
    })();
  }

  return {
    get,
    subscribed: (name) => live.has(name),
    close() {
      for (const controller of subscriptions.values()) controller.abort();
      subscriptions.clear();
      live.clear();
    },
  };
}

/** The event names of a text/event-stream body, as they arrive. */
async function* serverSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    for (let end = buffered.search(/\r?\n\r?\n/); end >= 0; end = buffered.search(/\r?\n\r?\n/)) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end).replace(/^\r?\n\r?\n/, "");
      const name = /^event: ?(.*)$/m.exec(block)?.[1]?.trim();
      if (name) yield name;
    }
  }
}

function selectorKey(name: string, selector: PromptSelector): string {
  return selector.version !== undefined ? `${name}@version=${selector.version}` : `${name}@label=${selector.label ?? PRODUCTION}`;
}

function pathOf(name: string, selector: PromptSelector): string {
  const resource = `/v1/resources/${encodeURIComponent(name)}`;
  return selector.version !== undefined ? `${resource}/versions/${selector.version}` : `${resource}?label=${encodeURIComponent(selector.label ?? PRODUCTION)}`;
}

function serve(entry: Entry, freshness: Freshness): Omit<ServedPrompt, "arm"> {
  return {
    resource: entry.resource,
    version: entry.resource.version,
    freshness,
    checkedAt: entry.checkedAt,
    ...(entry.error ? { error: entry.error } : {}),
  };
}

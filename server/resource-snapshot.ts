import { createHash } from "node:crypto";
import { ROOT_COMPONENT, renderPrompt } from "../agents/prompt-template.ts";
import type { CanarySplit } from "../client/canary-assignment.ts";
import type { ResourceChanges, ResourceFollowing } from "../store/resource-changes.ts";
import { CANARY, type LabelledVersion, type ResourceVersion, versionJson } from "../store/resources.ts";

/** One version as `GET /v1/resources/…` answers it, computed once: the JSON body, its strong ETag, the headers of a 200 and of a 304. */
export interface PreparedVersion {
  readonly version: number;
  readonly etag: string;
  readonly body: Uint8Array;
  readonly fullHeaders: Readonly<Record<string, string>>;
  readonly notModifiedHeaders: Readonly<Record<string, string>>;
}

/** Every label of one resource as of one moment, each pointing at its prepared version. */
export interface LabelledResource {
  readonly name: string;
  readonly labels: ReadonlyMap<string, PreparedVersion>;
  /** Ordered as the store orders them, for the "has no label" answer. */
  readonly labelNames: readonly string[];
  /** The running canary, when the `canary` label carries a weight. */
  readonly canary: CanarySplit | null;
}

/** What a read by label adds to the version: the label that served it, and the resource's canary split (clients pick an arm by key from it). */
export interface ServedBy {
  label: string;
  canary: CanarySplit | null;
}

export function prepareVersion(version: ResourceVersion, served?: ServedBy): PreparedVersion {
  const etag = etagOf(version, served);
  // no-cache: shared caches may keep it but must ask again (If-None-Match), so a rollback reaches clients at once.
  const notModifiedHeaders = { etag, "cache-control": "no-cache" };
  const rendered = version.content.components[ROOT_COMPONENT] !== undefined ? { rendered: renderPrompt(version.content) } : {};
  return {
    version: version.version,
    etag,
    body: Buffer.from(JSON.stringify({ ...versionJson(version), ...rendered, ...served })),
    fullHeaders: { ...notModifiedHeaders, "content-type": "application/json" },
    notModifiedHeaders,
  };
}

/** Strong: it changes exactly when what a client caches (name, version, content, and for a read by label the label and the canary split) changes. The version's labels are not part of it. */
function etagOf(version: Pick<ResourceVersion, "name" | "version" | "content">, served: ServedBy | undefined): string {
  const digest = createHash("sha256")
    .update(`${version.name}\u0000${version.version}\u0000${JSON.stringify(version.content)}${served ? `\u0000${JSON.stringify(served)}` : ""}`)
    .digest("base64url");
  return `"${digest.slice(0, 32)}"`;
}

/**
 * The labelled versions of every resource asked for, in memory. A resource is loaded (every label, one
 * query) on its first request and dropped on every change to it (store/resource-changes.ts); concurrent
 * misses share one load. A load that a change overtook is handed to the requests that were waiting for
 * it but not kept, so a request arriving after the change reads the database again. While this process
 * cannot be sure to hear of changes in time (starting, reconnecting, its lease lapsed), every request
 * reads the database, as if nothing were cached. Resources without labels are not kept, so asking for
 * made-up names fills no memory.
 */
export class ResourceSnapshot {
  private readonly entries = new Map<string, LabelledResource | Promise<LabelledResource>>();
  private readonly load: (name: string) => Promise<LabelledVersion[]>;
  private readonly following: ResourceFollowing;

  constructor(load: (name: string) => Promise<LabelledVersion[]>, changes: ResourceChanges) {
    this.load = load;
    changes.subscribe((change) => {
      if (change.kind === "resource") this.entries.delete(change.name);
      else this.entries.clear();
    });
    this.following = changes.follow();
  }

  /** From memory when it can (no promise), else from the store. */
  lookup(name: string): LabelledResource | Promise<LabelledResource> {
    if (!this.following.current()) return this.read(name);
    const known = this.entries.get(name);
    if (known) return known;
    const loading: Promise<LabelledResource> = this.read(name).then(
      (resource) => {
        if (this.entries.get(name) === loading) {
          if (resource.labelNames.length > 0) this.entries.set(name, resource);
          else this.entries.delete(name);
        }
        return resource;
      },
      (error: unknown) => {
        if (this.entries.get(name) === loading) this.entries.delete(name);
        throw error;
      },
    );
    this.entries.set(name, loading);
    return loading;
  }

  private async read(name: string): Promise<LabelledResource> {
    const labelled = await this.load(name);
    const onCanary = labelled.find((entry) => entry.label === CANARY && entry.weight !== null);
    const canary = onCanary ? { version: onCanary.version.version, weight: onCanary.weight! } : null;
    return {
      name,
      labels: new Map(labelled.map(({ label, version }) => [label, prepareVersion(version, { label, canary })])),
      labelNames: labelled.map(({ label }) => label),
      canary,
    };
  }
}

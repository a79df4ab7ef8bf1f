import { afterAll, beforeAll } from "vitest";
import type { RunningHttpServer } from "../../server/app.ts";
import type { Store } from "../../store/index.ts";
import { startApiServer } from "../resources/support.ts";
import { type Backend, openTestStore, type TestStore } from "./stores.ts";

/** A fresh store of the backend with `agl up`'s routes over it, for the tests of the enclosing file or describe block. */
export function serveOtlp(backend: Backend): { readonly store: Store; readonly url: string } {
  let handle: TestStore | undefined;
  let server: RunningHttpServer | undefined;
  beforeAll(async () => {
    handle = await openTestStore(backend);
    server = await startApiServer(handle.store);
  });
  afterAll(async () => {
    await server?.close();
    await handle?.close();
  });
  return {
    get store() {
      return handle!.store;
    },
    get url() {
      return server!.url;
    },
  };
}

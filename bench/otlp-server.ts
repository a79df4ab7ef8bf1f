// The OTLP ingest benchmark's server: the route `agl up` serves, over the store `agl up` would open (embedded
// PGlite in AGL_DATA_DIR, or DATABASE_URL), in a process of its own so the load generator does not take its CPU.
// Prints {"url"} once listening; answers each "totals" line on stdin with {"totals"} (spans and OTLP rollouts
// stored); on SIGTERM or the end of stdin closes and exits.
import { createInterface } from "node:readline";
import { loadConfig } from "../config/load.ts";
import { openRuntime } from "../runtime/runtime.ts";
import { createServerApp, startHttpServer } from "../server/app.ts";
import { otlpRoutes } from "../server/routes/otlp.ts";

const config = loadConfig();
const runtime = await openRuntime(config, { store: true, command: "the OTLP ingest benchmark" });
const http = await startHttpServer(createServerApp({ config, store: runtime.store }, [otlpRoutes]), { host: "127.0.0.1", port: 0 });
process.stdout.write(`${JSON.stringify({ url: http.url })}\n`);
let closing: Promise<never> | undefined;
const close = () =>
  (closing ??= (async () => {
    await http.close();
    await runtime.close();
    process.exit(0);
  })());
process.once("SIGTERM", close);
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "totals") process.stdout.write(`${JSON.stringify({ totals: await runtime.store.traces.totals() })}\n`);
}
await close();

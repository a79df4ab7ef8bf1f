// The OTLP ingest benchmark's server: the route `agl up` serves, over the store `agl up` would open (embedded
// PGlite in AGL_DATA_DIR, or DATABASE_URL), in a process of its own so the load generator does not take its CPU.
// Prints {"url"} once listening; on SIGTERM prints {"totals"} (spans and OTLP rollouts stored) and exits.
import { loadConfig } from "../config/load.ts";
import { openRuntime } from "../runtime/runtime.ts";
import { createServerApp, startHttpServer } from "../server/app.ts";
import { otlpRoutes } from "../server/routes/otlp.ts";

const config = loadConfig();
const runtime = await openRuntime(config, { store: true, command: "the OTLP ingest benchmark" });
const http = await startHttpServer(createServerApp({ config, store: runtime.store }, [otlpRoutes]), { host: "127.0.0.1", port: 0 });
process.stdout.write(`${JSON.stringify({ url: http.url, totals: await runtime.store.traces.totals() })}\n`);
process.once("SIGTERM", async () => {
  const totals = await runtime.store.traces.totals();
  await http.close();
  await runtime.close();
  process.stdout.write(`${JSON.stringify({ totals })}\n`);
  process.exit(0);
});

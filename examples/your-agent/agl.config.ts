import { defineConfig } from "agent-training-loop";
import { ticketTriage } from "./src/ticket-triage.ts";

// Every agl command run in this folder (cycle, worker, up, …) loads these agents.
export default defineConfig({
  agents: [ticketTriage],
});

// `npm run bench -- cycle` runs this in a process of its own: no agent has run there before, so the first
// round is what a cycle's fresh worker pays. Prints the rounds as one JSON line.
import { benchAgentPipeline } from "./cycle-throughput.ts";

process.stdout.write(`${JSON.stringify(await benchAgentPipeline())}\n`);

import { NotFoundError } from "../store/errors.ts";
import { postAnalyzer } from "./post-analyzer/index.ts";
import type { AgentDefinition } from "./types.ts";

const agents = new Map<string, AgentDefinition>([[postAnalyzer.id, postAnalyzer]]);

export function getAgent(id: string): AgentDefinition {
  const agent = agents.get(id);
  if (!agent) throw new NotFoundError(`Unknown agent "${id}". Known agents: ${[...agents.keys()].join(", ")}.`);
  return agent;
}

export function listAgents(): AgentDefinition[] {
  return [...agents.values()];
}

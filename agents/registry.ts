import { NotFoundError } from "../store/errors.ts";
import { postAnalyzer } from "./post-analyzer/index.ts";
import type { AgentDefinition } from "./types.ts";

const agents = new Map<string, AgentDefinition>([[postAnalyzer.id, postAnalyzer]]);

/** The registered agent of that id, if any: for data that may come from agents this process does not know. */
export function findAgent(id: string): AgentDefinition | undefined {
  return agents.get(id);
}

export function getAgent(id: string): AgentDefinition {
  const agent = findAgent(id);
  if (!agent) throw new NotFoundError(`Unknown agent "${id}". Known agents: ${[...agents.keys()].join(", ")}.`);
  return agent;
}

export function listAgents(): AgentDefinition[] {
  return [...agents.values()];
}

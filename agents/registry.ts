import { NotFoundError } from "../store/errors.ts";
import type { AgentDefinition } from "./types.ts";

/** The agents this process knows: the ones the project's config registers (the bundled examples without one). */
export interface AgentRegistry {
  /** The registered agent of that id, if any: for data that may come from agents this process does not know. */
  find(id: string): AgentDefinition | undefined;
  get(id: string): AgentDefinition;
  list(): AgentDefinition[];
  /** The agent whose prompt lives in resource `name`. */
  forResource(name: string): AgentDefinition;
}

/** Throws with every clash: two agents may not share an id or a prompt resource. */
export function createAgentRegistry(definitions: readonly AgentDefinition[]): AgentRegistry {
  const byId = new Map<string, AgentDefinition>();
  const byResource = new Map<string, AgentDefinition>();
  const problems: string[] = [];
  for (const agent of definitions) {
    if (byId.has(agent.id)) problems.push(`two agents have the id "${agent.id}"`);
    else byId.set(agent.id, agent);
    const other = byResource.get(agent.prompt.resource);
    if (other && other.id !== agent.id) problems.push(`agents "${other.id}" and "${agent.id}" share the prompt resource "${agent.prompt.resource}"`);
    else byResource.set(agent.prompt.resource, agent);
  }
  if (problems.length > 0) throw new Error(problems.join("; "));
  const known = (what: string, names: Iterable<string>) => {
    const list = [...names];
    return list.length > 0 ? `Known ${what}: ${list.join(", ")}.` : "No agents are registered: define them in agl.config.ts (see the README, \"Bring your own agent\").";
  };
  return {
    find: (id) => byId.get(id),
    get(id) {
      const agent = byId.get(id);
      if (!agent) throw new NotFoundError(`Unknown agent "${id}". ${known("agents", byId.keys())}`);
      return agent;
    },
    list: () => [...byId.values()],
    forResource(name) {
      const agent = byResource.get(name);
      if (!agent) throw new NotFoundError(`No agent uses a prompt resource named "${name}". ${known("resources", byResource.keys())}`);
      return agent;
    },
  };
}

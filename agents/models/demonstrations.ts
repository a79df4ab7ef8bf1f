/** One few-shot demonstration as the optimizer writes it into a prompt. */
export interface WrittenDemonstration {
  message: string;
  /** As written after `Answer: `: a JSON object, or a text. */
  answer: Record<string, unknown> | string;
}

/**
 * The demonstrations in a prompt, in the contract's format: a message line, then `Answer: <JSON or text>`.
 * For the fake models, which read them the way a model would.
 */
export function readDemonstrations(prompt: string): WrittenDemonstration[] {
  const demonstrations: WrittenDemonstration[] = [];
  for (const match of prompt.matchAll(/^(.+)\n\s*Answer:\s*(.*\S)\s*$/gm)) {
    const written = match[2]!;
    let answer: Record<string, unknown> | string = written;
    if (written.startsWith("{")) {
      try {
        answer = JSON.parse(written) as Record<string, unknown>;
      } catch {
        // An answer that looks like JSON but is not teaches nothing; a real model would ignore it too.
        continue;
      }
    }
    demonstrations.push({ message: match[1]!, answer });
  }
  return demonstrations;
}

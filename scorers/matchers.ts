/**
 * How one field of an answer is compared with its ground truth. Each matcher gives a credit in [0, 1]
 * (1 = right) and says in words what it saw, so the ground-truth reward can explain itself.
 */
export interface FieldMatcher {
  readonly name: string;
  credit(expected: unknown, actual: unknown): number;
  /** The ground truth may list several acceptable answers for this field (one-of). */
  readonly acceptsAlternatives?: boolean;
}

/** The same JSON value (object keys in any order). */
export function exact(): FieldMatcher {
  return { name: "exact", credit: (expected, actual) => (canonical(expected) === canonical(actual) ? 1 : 0) };
}

/** The same text once case, accents, punctuation and spacing are set aside ("Acme, Inc." = "acme inc"). */
export function normalized(): FieldMatcher {
  return {
    name: "normalized",
    credit: (expected, actual) => (typeof actual === "string" || typeof actual === "number" ? Number(normalizeText(String(expected)) === normalizeText(String(actual))) : 0),
  };
}

/** Right when the answer matches any of the acceptable answers the ground truth lists (or the one it gives), compared normalised. */
export function oneOf(): FieldMatcher {
  const inner = normalized();
  return {
    name: "one-of",
    acceptsAlternatives: true,
    credit: (expected, actual) => Math.max(0, ...(Array.isArray(expected) ? expected : [expected]).map((option) => inner.credit(option, actual))),
  };
}

/** A number within `absolute` or `relative` × |expected| of the expected one (both 0: equal). */
export function numeric(options: { absolute?: number; relative?: number } = {}): FieldMatcher {
  const absolute = options.absolute ?? 0;
  const relative = options.relative ?? 0;
  if (!(absolute >= 0) || !(relative >= 0)) throw new Error("numeric(): absolute and relative tolerances must be numbers ≥ 0");
  return {
    name: relative > 0 ? `numeric ±${relative * 100}%` : absolute > 0 ? `numeric ±${absolute}` : "numeric",
    credit(expected, actual) {
      if (typeof expected !== "number" || typeof actual !== "number" || !Number.isFinite(actual)) return 0;
      return Math.abs(actual - expected) <= Math.max(absolute, relative * Math.abs(expected)) + 1e-9 ? 1 : 0;
    },
  };
}

/** For arrays: the F1 of the answered items against the expected ones, items compared normalised (order does not matter). */
export function setOverlap(): FieldMatcher {
  return {
    name: "set overlap",
    credit(expected, actual) {
      if (!Array.isArray(expected) || !Array.isArray(actual)) return 0;
      const want = new Set(expected.map(itemKey));
      const got = new Set(actual.map(itemKey));
      if (want.size === 0 && got.size === 0) return 1;
      const shared = [...got].filter((item) => want.has(item)).length;
      return f1(shared, got.size, want.size);
    },
  };
}

/** For free text: the F1 of the answer's words against the reference's (SQuAD-style, normalised, counted with multiplicity). */
export function tokenF1(): FieldMatcher {
  return {
    name: "token F1",
    credit(expected, actual) {
      if (typeof expected !== "string" || typeof actual !== "string") return 0;
      const want = tokens(expected);
      const got = tokens(actual);
      if (want.length === 0 && got.length === 0) return 1;
      const counts = new Map<string, number>();
      for (const token of want) counts.set(token, (counts.get(token) ?? 0) + 1);
      let shared = 0;
      for (const token of got) {
        const left = counts.get(token) ?? 0;
        if (left > 0) {
          shared++;
          counts.set(token, left - 1);
        }
      }
      return f1(shared, got.length, want.length);
    },
  };
}

/** The matcher a field gets when the agent names none, from its JSON Schema type. */
export function defaultMatcher(property: Record<string, unknown> | undefined): FieldMatcher {
  if (!property) return exact();
  if (Array.isArray(property.enum)) return exact();
  const type = property.type;
  if (type === "number") return numeric();
  if (type === "string") return normalized();
  if (type === "array") return setOverlap();
  return exact();
}

export function normalizeText(text: string): string {
  return text
    .normalize("NFKD")
    .replace(/\p{M}+/gu, "")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, " ")
    .trim();
}

function tokens(text: string): string[] {
  return normalizeText(text).split(" ").filter(Boolean);
}

function itemKey(item: unknown): string {
  return typeof item === "string" || typeof item === "number" ? normalizeText(String(item)) : canonical(item);
}

function f1(shared: number, answered: number, expected: number): number {
  if (shared === 0) return 0;
  const precision = shared / answered;
  const recall = shared / expected;
  return (2 * precision * recall) / (precision + recall);
}

/** JSON with object keys sorted, to compare values whatever order their keys came in. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    inner && typeof inner === "object" && !Array.isArray(inner) ? Object.fromEntries(Object.entries(inner as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : inner,
  ) ?? "undefined";
}

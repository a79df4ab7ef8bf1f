import { createScorer } from "@mastra/core/evals";
import { normalizeText } from "../../scorers/matchers.ts";

/** Most words a reply may have. */
export const MAX_REPLY_WORDS = 80;

/** Ways of saying each status; "not found" is the lookup's answer for an id the shop does not know. */
const STATUS_PHRASES: Record<string, RegExp> = {
  processing: /\b(processing|being (prepared|packed|processed)|not (yet )?(been )?(shipped|sent)|has ?n[o']t (shipped|left)|will ship|ships by)\b/i,
  shipped: /\b(shipped|on (its|the) way|in transit|dispatched)\b/i,
  delayed: /\b(delay(ed)?|running late|behind schedule)\b/i,
  delivered: /\bdelivered\b/i,
  cancelled: /\b(cancell?ed|cancell?ation)\b/i,
  refunded: /\brefund(ed)?\b/i,
  not_found: /\b(not[ _]found|(could ?n[o']t|could not|can ?n[o']t|cannot|unable to) find|no order)\b/i,
};

/** Things a support reply must not offer: the shop's policy allows none of them. */
const PROMISES = /\b(guarantee[sd]?|promise[sd]?|for free|free of charge|compensat\w*|vouchers?|discounts?|coupons?)\b/i;

interface Check {
  rule: string;
  passed: boolean;
}

interface RunView {
  input?: { customer?: string; orderId?: string };
  output: unknown;
  groundTruth?: { status?: string; mustMention?: string[] };
  requestContext?: { toolCalls?: readonly { name: string; args: unknown; result?: unknown }[] } | { get(key: string): unknown };
}

/**
 * The rule-based half of the support reply's reward, written as a plain Mastra scorer: the share of
 * these rules the reply keeps.
 * - it looked the order up (a `lookupOrder` call with the customer's order id);
 * - it states the order's real status: the task's ground truth, else what the lookup answered;
 * - it names the customer (their first name);
 * - it mentions each value the ground truth lists (`mustMention`: a tracking number, a date, a refund);
 * - it stays under MAX_REPLY_WORDS words;
 * - it promises nothing the shop cannot give (guarantees, discounts, vouchers, compensation).
 */
export const replyRules = createScorer({
  id: "reply-rules",
  description: `The share of the support reply's rules it keeps: order looked up, real status stated, customer named, required details mentioned, at most ${MAX_REPLY_WORDS} words, no promises.`,
})
  .preprocess(({ run }) => ({ checks: checksOf(run as RunView) }))
  .generateScore(({ results }) => {
    const { checks } = results.preprocessStepResult as { checks: Check[] };
    return checks.filter((check) => check.passed).length / checks.length;
  })
  .generateReason(({ results }) => {
    const { checks } = results.preprocessStepResult as { checks: Check[] };
    const broken = checks.filter((check) => !check.passed).map((check) => check.rule);
    const kept = checks.length - broken.length;
    return broken.length === 0 ? `keeps all ${checks.length} rules` : `keeps ${kept} of ${checks.length} rules; broke: ${broken.join("; ")}`;
  });

function checksOf(run: RunView): Check[] {
  const reply = typeof run.output === "string" ? run.output : "";
  const orderId = run.input?.orderId ?? "";
  const toolCalls = toolCallsOf(run.requestContext);
  const lookup = toolCalls.find((call) => call.name === "lookupOrder" && normalizeText(String((call.args as { orderId?: unknown } | null)?.orderId ?? "")) === normalizeText(orderId));
  const looked = (lookup?.result as { status?: unknown } | undefined)?.status;
  const status = run.groundTruth?.status ?? (typeof looked === "string" ? looked.replace(" ", "_") : undefined);
  const firstName = (run.input?.customer ?? "").trim().split(/\s+/)[0] ?? "";
  const said = normalizeText(reply);
  const words = reply.split(/\s+/).filter(Boolean).length;
  const checks: Check[] = [{ rule: `looked up order ${orderId}`, passed: lookup !== undefined }];
  if (status && STATUS_PHRASES[status]) checks.push({ rule: `states the status (${status.replace("_", " ")})`, passed: STATUS_PHRASES[status].test(reply) });
  if (firstName) checks.push({ rule: `names the customer (${firstName})`, passed: new RegExp(`(?<![\\p{L}])${escape(firstName)}(?![\\p{L}])`, "iu").test(reply) });
  for (const detail of run.groundTruth?.mustMention ?? []) checks.push({ rule: `mentions ${detail}`, passed: ` ${said} `.includes(` ${normalizeText(detail)} `) });
  checks.push({ rule: `at most ${MAX_REPLY_WORDS} words (has ${words})`, passed: words <= MAX_REPLY_WORDS });
  const promise = PROMISES.exec(reply)?.[0];
  checks.push({ rule: promise ? `promises nothing (says "${promise}")` : "promises nothing", passed: promise === undefined });
  return checks;
}

/** agl passes the tool calls in the run's request context: a plain object, or Mastra's RequestContext. */
function toolCallsOf(context: RunView["requestContext"]): readonly { name: string; args: unknown; result?: unknown }[] {
  if (!context) return [];
  const calls = "get" in context && typeof context.get === "function" ? context.get("toolCalls") : (context as { toolCalls?: unknown }).toolCalls;
  return Array.isArray(calls) ? calls : [];
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

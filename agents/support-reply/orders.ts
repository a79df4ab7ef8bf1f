import { readFileSync } from "node:fs";
import { createTool } from "@mastra/core/tools";
import { z } from "zod";

/** The shop's order ids: a letter, a dash, four digits. */
export const ORDER_ID = /^[A-Z]-\d{4}$/;

export const ORDER_STATUSES = ["processing", "shipped", "delayed", "delivered", "cancelled", "refunded"] as const;

const orderSchema = z
  .object({
    orderId: z.string().regex(ORDER_ID),
    item: z.string().min(1),
    status: z.enum(ORDER_STATUSES),
    placedOn: z.string().min(1),
    carrier: z.string().min(1).optional(),
    tracking: z.string().min(1).optional(),
    eta: z.string().min(1).optional(),
    delayReason: z.string().min(1).optional(),
    shipsBy: z.string().min(1).optional(),
    deliveredOn: z.string().min(1).optional(),
    refund: z.string().min(1).optional(),
    refundIssuedOn: z.string().min(1).optional(),
  })
  .strict();

export type Order = z.infer<typeof orderSchema>;

/** The bundled shop's orders (written for this project), checked once when the module loads. */
export const ORDERS: ReadonlyMap<string, Order> = new Map(
  z
    .array(orderSchema)
    .parse(JSON.parse(readFileSync(new URL("./data/orders.json", import.meta.url), "utf8")))
    .map((order) => [order.orderId, order]),
);

/**
 * The support agent's one tool: what the shop knows about an order. An id it does not know answers
 * `status: "not found"` rather than failing, so the agent can tell the customer to check the number.
 */
export const lookupOrder = createTool({
  id: "lookupOrder",
  description: "Looks up an order by its id (like A-1042): its item, status, carrier, tracking number and dates, or its refund.",
  inputSchema: z.object({ orderId: z.string().regex(ORDER_ID).describe("the order id, e.g. A-1042") }),
  execute: async ({ orderId }) => ORDERS.get(orderId) ?? { orderId, status: "not found" },
});

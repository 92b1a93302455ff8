import { DurableObject } from "cloudflare:workers";

/** One per conversation: live sockets, typing, receipts; the single writer that assigns message seq. */
export class ConversationRoom extends DurableObject<Env> {}

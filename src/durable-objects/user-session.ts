import { DurableObject } from "cloudflare:workers";

/** One per user: presence across devices, unread badges and notifications. */
export class UserSession extends DurableObject<Env> {}

import { and, eq, gt, inArray, lt, sql } from "drizzle-orm";
import type { AuthUser } from "../../lib/jwt";
import type { AnyDb, Db } from "../client";
import { realtimeTickets } from "../schema";

export const TICKET_TTL_MS = 60_000;

export async function createTicket(db: AnyDb, ticket: string, user: AuthUser): Promise<Date> {
  // RFC 7519 allows a fractional exp; the column holds whole seconds (floored: never later than the token).
  const tokenExp = user.exp === undefined ? null : Math.min(Math.floor(user.exp), Number.MAX_SAFE_INTEGER);
  // No later than the token: consumeTicket refuses it past the token's exp, and the answer's expiresAt must say so.
  const expiresAt = new Date(Math.min(Date.now() + TICKET_TTL_MS, tokenExp === null ? Infinity : tokenExp * 1000));
  await db.insert(realtimeTickets).values({ ticket, userId: user.id, kahaId: user.kahaId, role: user.role ?? null, expiresAt, tokenExp });
  return expiresAt;
}

/** A ticket taken by consumeTicket: the caller it names, and its row to put back if the upgrade is refused. */
export interface SpentTicket {
  user: AuthUser;
  row: typeof realtimeTickets.$inferSelect;
}

/**
 * Single use: the row is deleted as it is read, so a replayed ticket finds nothing. A ticket lives no longer than
 * the token it was issued for: past the token's exp it is refused like an expired token (it opened a socket that
 * the object's alarm closed only seconds later).
 */
export async function consumeTicket(db: AnyDb, ticket: string, nowMs = Date.now()): Promise<SpentTicket | undefined> {
  const rows = await db
    .delete(realtimeTickets)
    .where(and(eq(realtimeTickets.ticket, ticket), gt(realtimeTickets.expiresAt, sql`now()`)))
    .returning();
  const row = rows[0];
  if (!row) return undefined;
  const exp = row.tokenExp ?? undefined;
  if (exp !== undefined && exp * 1000 <= nowMs) return undefined;
  return { user: { id: row.userId, kahaId: row.kahaId, role: row.role ?? undefined, exp }, row };
}

/**
 * Puts back a ticket whose upgrade was refused before any socket opened (too many sockets, a room unavailable): it
 * opened nothing, so the client's retry after Retry-After may use it, until its own expiry. A ticket whose upgrade
 * succeeded is never put back, so it still opens one socket at most.
 */
export async function restoreTicket(db: AnyDb, spent: SpentTicket): Promise<void> {
  await db.insert(realtimeTickets).values(spent.row).onConflictDoNothing();
}

/** Tickets that expired before `now` (the job's clock, so a test can move it); `userIds` scopes a test's run. */
export async function deleteExpiredTickets(db: Db, now: Date, userIds?: string[]): Promise<number> {
  const expired = lt(realtimeTickets.expiresAt, now);
  const rows = await db
    .delete(realtimeTickets)
    .where(userIds ? and(expired, inArray(realtimeTickets.userId, userIds)) : expired)
    .returning({ t: realtimeTickets.ticket });
  return rows.length;
}

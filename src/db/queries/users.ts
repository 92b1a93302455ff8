import { eq, sql } from "drizzle-orm";
import type { AnyDb, Db } from "../client";
import { users } from "../schema";

// Provisioning is idempotent; remembering recent ids saves a write on every request from the same isolate.
// Two sets: a row this isolate only created as a placeholder still needs its user's own first request to fill in
// the kaha id (one set for both kept that user's profile a placeholder for the isolate's life).
const provisioned = new Set<string>();
const placeheld = new Set<string>();
const MAX_REMEMBERED = 10_000;

function remember(set: Set<string>, id: string) {
  if (set.size >= MAX_REMEMBERED) set.clear();
  set.add(id);
}

/**
 * A verified token provisions its user; a placeholder kahaId left by provisionUserIds is filled in. The database
 * is a factory so a user this isolate already provisioned costs no connection at all.
 */
export async function provisionUser(db: () => AnyDb, id: string, kahaId: string): Promise<void> {
  if (provisioned.has(id)) return;
  await db()
    .insert(users)
    .values({ id, kahaId })
    .onConflictDoUpdate({
      target: users.id,
      set: { kahaId },
      setWhere: sql`${users.kahaId} LIKE 'unknown:%'`,
    });
  remember(provisioned, id);
}

/** Of these ids, the ones this isolate has not seen provisioned: a write naming them needs a users row first. */
export function unprovisioned(ids: string[]): string[] {
  return [...new Set(ids)].filter((id) => !provisioned.has(id) && !placeheld.has(id));
}

/** Placeholder rows (the user's own first request fills in the kaha id), for an insert or a statement's CTE. */
export function placeholderRows(ids: string[]): { id: string; kahaId: string }[] {
  return ids.map((id) => ({ id, kahaId: `unknown:${id}` }));
}

/** After a statement wrote placeholder rows for `ids` (or found them there). */
export function placeheldNow(ids: string[]): void {
  for (const id of ids) remember(placeheld, id);
}

/** Users named in a body are provisioned too (identity belongs to the external platform). */
export async function provisionUserIds(db: Db, ids: string[]): Promise<void> {
  const missing = unprovisioned(ids);
  if (missing.length === 0) return;
  await db.insert(users).values(placeholderRows(missing)).onConflictDoNothing({ target: users.id });
  placeheldNow(missing);
}

export async function getUser(db: Db, id: string) {
  const rows = await db.select().from(users).where(eq(users.id, id)).limit(1);
  return rows[0];
}

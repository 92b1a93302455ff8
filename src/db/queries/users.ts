import { eq, sql } from "drizzle-orm";
import type { Db } from "../client";
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
export async function provisionUser(db: () => Db, id: string, kahaId: string): Promise<void> {
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

/** Users named in a body are provisioned too (identity belongs to the external platform). */
export async function provisionUserIds(db: Db, ids: string[]): Promise<void> {
  const missing = [...new Set(ids)].filter((id) => !provisioned.has(id) && !placeheld.has(id));
  if (missing.length === 0) return;
  await db
    .insert(users)
    .values(missing.map((id) => ({ id, kahaId: `unknown:${id}` })))
    .onConflictDoNothing({ target: users.id });
  for (const id of missing) remember(placeheld, id);
}

export async function getUser(db: Db, id: string) {
  const rows = await db.select().from(users).where(eq(users.id, id)).limit(1);
  return rows[0];
}

import { sql } from "drizzle-orm";
import { pgErrorCode, type AnyDb } from "../client";

/**
 * The newest file in migrations/ (a unit test keeps the two in step): the schema this code needs. `npm run migrate`
 * records each applied file by name in the `migrations` table.
 */
export const NEWEST_MIGRATION = "0017_conversation_version.sql";

/**
 * Whether the database has applied NEWEST_MIGRATION. A deploy whose migrations were not run answered every request
 * touching a new column with a 500, while /health/detailed said `ok`. A database never migrated has no `migrations`
 * table (42P01): pending too. Other failures throw (the connection check reports those).
 */
export async function migrationsApplied(db: AnyDb): Promise<boolean> {
  try {
    const result = await db.execute<{ applied: boolean }>(sql`SELECT EXISTS (SELECT 1 FROM migrations WHERE name = ${NEWEST_MIGRATION}) AS applied`);
    return result.rows[0]?.applied === true;
  } catch (err) {
    if (pgErrorCode(err) === "42P01") return false;
    throw err;
  }
}

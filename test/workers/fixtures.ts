import { env } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { openDb } from "../../src/db/client";
import { newUser, type TestUser } from "./helpers";

/** Direct database access from inside workerd, through the same driver and bridge the Worker uses. */
export async function withDb<T>(work: (db: ReturnType<typeof openDb>["db"]) => Promise<T>): Promise<T> {
  const handle = openDb({ databaseUrl: env.DATABASE_URL, bridge: env.PG_BRIDGE });
  try {
    return await work(handle.db);
  } finally {
    await handle.end();
  }
}

/** A conversation inserted straight into Postgres (independent of the conversation routes under test elsewhere). */
export async function seedConversation(
  type: "direct" | "group" | "business",
  count: number,
): Promise<{ id: string; users: TestUser[] }> {
  const users: TestUser[] = [];
  for (let i = 0; i < count; i++) users.push(await newUser(`seed${i}`));
  const id = crypto.randomUUID();
  await withDb(async (db) => {
    for (const u of users) await db.execute(sql`INSERT INTO users (id, kaha_id) VALUES (${u.id}, ${u.kahaId}) ON CONFLICT DO NOTHING`);
    const directKey = type === "direct" ? [users[0].id, users[1].id].sort().join(":") : null;
    await db.execute(
      sql`INSERT INTO conversations (id, type, name, direct_key, created_by) VALUES (${id}, ${type}, ${type === "group" ? "Seeded" : null}, ${directKey}, ${users[0].id})`,
    );
    for (const [i, u] of users.entries()) {
      const role = type === "group" ? (i === 0 ? "admin" : "member") : type === "business" ? (i === 0 ? "customer" : "agent") : "member";
      await db.execute(sql`INSERT INTO participants (conversation_id, user_id, role) VALUES (${id}, ${u.id}, ${role})`);
    }
  });
  return { id, users };
}

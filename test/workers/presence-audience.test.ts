import { describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { publishPresence } from "../../src/db/queries/user-session";
import { seedConversation, withDb } from "./fixtures";

describe("publishPresence (one statement per presence change)", () => {
  it("writes the flag and returns the active contacts, conversations and businesses, each once", async () => {
    const a = await seedConversation("group", 3);
    const [me, bob, carol] = a.users;
    const b = await seedConversation("group", 2);
    const dave = b.users[1];
    const business = crypto.randomUUID();
    await withDb(async (db) => {
      // me joins b instead of its seeded first member; carol is in both, so she must come back once.
      await db.execute(sql`UPDATE participants SET user_id = ${me.id} WHERE conversation_id = ${b.id} AND user_id = ${b.users[0].id}`);
      await db.execute(sql`INSERT INTO participants (conversation_id, user_id, role) VALUES (${b.id}, ${carol.id}, 'member')`);
      // Bob has left a: he is no longer a contact through it.
      await db.execute(sql`UPDATE participants SET left_at = now() WHERE conversation_id = ${a.id} AND user_id = ${bob.id}`);
      await db.execute(sql`INSERT INTO business_agents (business_id, user_id) VALUES (${business}, ${me.id})`);
    });
    const seen = new Date("2026-11-26T12:00:00Z");

    const online = await withDb((db) => publishPresence(db, me.id, true, seen));
    expect(online.contacts.sort()).toEqual([carol.id, dave.id].sort());
    expect(online.conversations.sort()).toEqual([a.id, b.id].sort());
    expect(online.businesses).toEqual([business]);
    const flag = () =>
      withDb(async (db) => (await db.execute<{ online: boolean; seen: string }>(sql`SELECT online, last_seen_at AS seen FROM users WHERE id = ${me.id}`)).rows[0]);
    expect(await flag()).toMatchObject({ online: true });
    expect(new Date((await flag()).seen).getTime()).toBe(seen.getTime());

    // Offline with no lastSeen keeps the one written before; after leaving a, only b's people remain.
    await withDb((db) => db.execute(sql`UPDATE participants SET left_at = now() WHERE conversation_id = ${a.id} AND user_id = ${me.id}`));
    const offline = await withDb((db) => publishPresence(db, me.id, false, null));
    expect(offline.conversations).toEqual([b.id]);
    expect(offline.contacts.sort()).toEqual([carol.id, dave.id].sort());
    expect(await flag()).toMatchObject({ online: false });
    expect(new Date((await flag()).seen).getTime()).toBe(seen.getTime());
  });

  it("returns empty lists for a user with no conversations", async () => {
    const { users } = await seedConversation("direct", 2);
    await withDb((db) => db.execute(sql`UPDATE participants SET left_at = now() WHERE user_id = ${users[0].id}`));
    expect(await withDb((db) => publishPresence(db, users[0].id, true, null))).toEqual({ contacts: [], conversations: [], businesses: [] });
  });
});

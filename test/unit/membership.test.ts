import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Departures } from "../../src/domain/departures";
import {
  checkActorNow,
  checkAdd,
  checkCapacity,
  checkDemotion,
  checkDirectTarget,
  checkRemove,
  checkRename,
  checkRoleChange,
  directKey,
  groupMembers,
  isDenial,
  promotionAfterLeave,
  type Member,
} from "../../src/domain/membership";

const id = (n: number) => `00000000-0000-4000-8000-${n.toString().padStart(12, "0")}`;
const ids = (from: number, count: number) => Array.from({ length: count }, (_, i) => id(from + i));

describe("direct conversations", () => {
  it("keys a pair the same way from both sides, case-insensitively", () => {
    expect(directKey(id(2), id(1))).toBe(`${id(1)}:${id(2)}`);
    expect(directKey(id(1), id(2))).toBe(directKey(id(2), id(1)));
    const upper = "AAAAAAAA-0000-4000-8000-000000000000";
    expect(directKey(upper, id(1))).toBe(directKey(upper.toLowerCase(), id(1)));
  });

  it("refuses a conversation with yourself", () => {
    expect(checkDirectTarget(id(1), id(1))?.status).toBe(400);
    expect(checkDirectTarget(id(1), id(1).toUpperCase())?.status).toBe(400);
    expect(checkDirectTarget(id(1), id(2))).toBeNull();
  });
});

describe("group creation", () => {
  it("removes duplicates and the creator before counting 3–8 including the creator", () => {
    expect(groupMembers(id(0), [id(1), id(1), id(2), id(0)])).toEqual({ members: [id(1), id(2)] });
    expect(groupMembers(id(0), ids(1, 7))).toEqual({ members: ids(1, 7) });
    const upperDup = groupMembers(id(0), [id(1), id(1).toUpperCase(), id(2)]);
    expect(upperDup).toEqual({ members: [id(1), id(2)] });
  });

  it("refuses fewer than 3 or more than 8 members", () => {
    for (const others of [[], [id(1)], [id(1), id(1), id(0)], ids(1, 8)]) {
      const result = groupMembers(id(0), others);
      expect(isDenial(result) && result.status).toBe(400);
    }
  });

  it("never yields the creator or a duplicate, for any input", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 12 }), { maxLength: 30 }), (picks) => {
        const result = groupMembers(id(0), picks.map(id));
        if (isDenial(result)) return;
        expect(result.members).not.toContain(id(0));
        expect(new Set(result.members).size).toBe(result.members.length);
        expect(result.members.length + 1).toBeGreaterThanOrEqual(3);
        expect(result.members.length + 1).toBeLessThanOrEqual(8);
      }),
    );
  });
});

describe("who may change a conversation", () => {
  it("lets only a group admin rename, with 400 for other types", () => {
    expect(checkRename("group", "admin")).toBeNull();
    expect(checkRename("group", "member")?.status).toBe(403);
    expect(checkRename("direct", "member")?.status).toBe(400);
    expect(checkRename("business", "customer")?.status).toBe(400);
  });

  it("says in plain words why it refuses", () => {
    expect(checkRename("group", "member")?.message).toBe("Only a group admin can rename a group");
    expect(checkRename("direct", "member")?.message).toBe("Only group conversations support renaming");
    expect(checkRoleChange("group", "member", "admin")?.message).toBe("Only a group admin can change roles");
    expect(checkAdd("group", "member", "member")?.message).toBe("Only a group admin can add participants");
  });

  it("adds only to groups, only by admins, only with group roles", () => {
    expect(checkAdd("group", "admin", "member")).toBeNull();
    expect(checkAdd("group", "admin", "admin")).toBeNull();
    expect(checkAdd("group", "member", "member")?.status).toBe(403);
    expect(checkAdd("direct", "member", "member")?.status).toBe(400);
    expect(checkAdd("business", "customer", "agent")?.status).toBe(400);
    for (const role of ["customer", "agent", "business"] as const) expect(checkAdd("group", "admin", role)?.status).toBe(400);
  });

  it("checks capacity and duplicates under the lock", () => {
    expect(checkCapacity(7, false)).toBeNull();
    expect(checkCapacity(8, false)?.status).toBe(409);
    expect(checkCapacity(3, true)?.status).toBe(409);
  });

  it("lets anyone leave, and only group admins remove others", () => {
    for (const type of ["direct", "group", "business"] as const) expect(checkRemove(type, "member", true)).toBeNull();
    expect(checkRemove("group", "admin", false)).toBeNull();
    expect(checkRemove("group", "member", false)?.status).toBe(403);
    expect(checkRemove("direct", "member", false)?.status).toBe(403);
    expect(checkRemove("business", "agent", false)?.status).toBe(403);
  });

  it("changes roles only in groups, by admins, to group roles, keeping one admin", () => {
    expect(checkRoleChange("group", "admin", "admin")).toBeNull();
    expect(checkRoleChange("group", "member", "admin")?.status).toBe(403);
    expect(checkRoleChange("group", "admin", "agent")?.status).toBe(400);
    expect(checkRoleChange("direct", "member", "admin")?.status).toBe(400);
    expect(checkDemotion("admin", "member", 1)?.status).toBe(409);
    expect(checkDemotion("admin", "member", 2)).toBeNull();
    expect(checkDemotion("member", "admin", 1)).toBeNull();
    expect(checkDemotion("admin", "admin", 1)).toBeNull();
  });

  it("re-checks the actor under the lock: a demoted admin is refused (403), a removed one does not see it (404)", () => {
    expect(checkActorNow({ role: "admin" }, true)).toBeNull();
    expect(checkActorNow({ role: "member" }, true)?.status).toBe(403);
    expect(checkActorNow({ role: "member" }, false)).toBeNull();
    expect(checkActorNow(undefined, false)?.status).toBe(404);
  });
});

describe("promotion when the last admin leaves", () => {
  const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute));
  const member = (n: number, minute: number, role: Member["role"] = "member"): Member => ({ userId: id(n), role, joinedAt: at(minute) });

  it("promotes the member who joined first", () => {
    expect(promotionAfterLeave("group", "admin", [member(3, 5), member(2, 1), member(4, 9)])).toBe(id(2));
  });

  it("breaks ties by user id", () => {
    expect(promotionAfterLeave("group", "admin", [member(5, 1), member(4, 1)])).toBe(id(4));
  });

  it("promotes nobody while an admin remains, when a member leaves, when nobody is left, or outside groups", () => {
    expect(promotionAfterLeave("group", "admin", [member(2, 1), member(3, 0, "admin")])).toBeUndefined();
    expect(promotionAfterLeave("group", "member", [member(2, 1)])).toBeUndefined();
    expect(promotionAfterLeave("group", "admin", [])).toBeUndefined();
    expect(promotionAfterLeave("direct", "admin", [member(2, 1)])).toBeUndefined();
  });
});

describe("Departures", () => {
  it("ends the membership a removal ended, not a later one, and forgets once no read can still be out", () => {
    const d = new Departures(30_000);
    d.note("u", 1000, 5000);
    expect(d.ended("u", 900, 5000)).toBe(true);
    expect(d.ended("u", 1000, 5000)).toBe(true);
    expect(d.ended("u", 1001, 5000)).toBe(false);
    expect(d.ended("other", 900, 5000)).toBe(false);
    // An older removal's notice, arriving late, does not move the mark back.
    d.note("u", 500, 6000);
    expect(d.ended("u", 900, 6000)).toBe(true);
    expect(d.ended("u", 900, 35_000)).toBe(false);
  });
});

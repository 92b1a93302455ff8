import type { Participant, PresenceStatus } from "../../src/client";
import { presenceLabel, type Directory } from "./format";

const ROLE_NOTE: Partial<Record<Participant["role"], string>> = { admin: "admin", agent: "agent", business: "business" };

/**
 * A group's or business chat's members, one line each: the header said only "5 members", and who was in the
 * conversation could not be found out. The signed-in user first, then by name; each with their role where it matters
 * and, for the others, whether they are online.
 */
export function memberLines(
  participants: readonly Pick<Participant, "userId" | "role">[],
  me: string,
  dir: Pick<Directory, "name">,
  status: (userId: string) => PresenceStatus,
): string[] {
  const named = participants.map((p) => ({ ...p, name: dir.name(p.userId) }));
  named.sort((a, b) => (a.userId === me ? -1 : b.userId === me ? 1 : a.name.localeCompare(b.name)));
  return named.map((p) => {
    const role = ROLE_NOTE[p.role];
    const parts = [p.userId === me ? `${p.name} (you)` : p.name, ...(role ? [role] : []), ...(p.userId === me ? [] : [presenceLabel[status(p.userId)]])];
    return parts.join(" · ");
  });
}

import { groupRoles, LIMITS, type ConversationType, type Role } from "../protocol/resources";

/**
 * Who may do what to a conversation's membership. Pure rules: the routes and queries supply the facts (types, roles,
 * counts) and turn a Denial into the contract's error.
 */
export interface Denial {
  status: 400 | 403 | 404 | 409;
  message: string;
}

export interface Member {
  userId: string;
  role: Role;
  joinedAt: Date;
}

export const isDenial = (value: object): value is Denial => "status" in value && "message" in value;

const deny = (status: Denial["status"], message: string): Denial => ({ status, message });

/** "low:high" of the pair, lower-cased: the same key whichever side asks (the unique index relies on it). */
export function directKey(a: string, b: string): string {
  const [x, y] = [a.toLowerCase(), b.toLowerCase()];
  return x < y ? `${x}:${y}` : `${y}:${x}`;
}

export function checkDirectTarget(actorId: string, targetId: string): Denial | null {
  return actorId.toLowerCase() === targetId.toLowerCase() ? deny(400, "Cannot start a direct conversation with yourself") : null;
}

/** The other members of a new group: duplicates and the creator removed, then 3–8 counted with the creator. */
export function groupMembers(creatorId: string, participantIds: readonly string[]): { members: string[] } | Denial {
  const creator = creatorId.toLowerCase();
  const members = [...new Set(participantIds.map((id) => id.toLowerCase()))].filter((id) => id !== creator);
  const total = members.length + 1;
  if (total < LIMITS.groupMin || total > LIMITS.groupMax) {
    return deny(400, `A group has ${LIMITS.groupMin}–${LIMITS.groupMax} members including you (got ${total} after removing duplicates)`);
  }
  return { members };
}

/** Roles that may be given through the participant routes; business roles come from routing, not from clients. */
export function assignableRoles(type: ConversationType): readonly Role[] {
  return type === "group" ? groupRoles : [];
}

/** `action`: what is asked, as a noun ("renaming") and as a verb ("rename a group"), for the two refusals. */
function requireGroupAdmin(type: ConversationType, actorRole: Role, action: { noun: string; verb: string }): Denial | null {
  if (type !== "group") return deny(400, `Only group conversations support ${action.noun}`);
  if (actorRole !== "admin") return deny(403, `Only a group admin can ${action.verb}`);
  return null;
}

export function checkRename(type: ConversationType, actorRole: Role): Denial | null {
  return requireGroupAdmin(type, actorRole, { noun: "renaming", verb: "rename a group" });
}

/** Before the transaction: may this actor add someone with this role here? */
export function checkAdd(type: ConversationType, actorRole: Role, role: Role): Denial | null {
  if (type === "direct") return deny(400, "A direct conversation never gains members");
  if (type === "business") return deny(400, "Participants of business conversations are assigned by the business");
  const denied = requireGroupAdmin(type, actorRole, { noun: "adding participants", verb: "add participants" });
  if (denied) return denied;
  if (!assignableRoles(type).includes(role)) return deny(400, `role must be one of: ${assignableRoles(type).join(", ")}`);
  return null;
}

/**
 * Inside the transaction, with the conversation locked: the actor as a member now (undefined: no longer one). The
 * route checked the role before; a demotion or removal committed since wins, so a request racing it does not act
 * with the role it lost. `asAdmin`: the action is a group admin's (leaving is not).
 */
export function checkActorNow(actor: { role: Role } | undefined, asAdmin: boolean): Denial | null {
  if (!actor) return deny(404, "Conversation not found");
  if (asAdmin && actor.role !== "admin") return deny(403, "You are no longer a group admin");
  return null;
}

/** Inside the transaction, with the conversation locked: the facts that concurrent requests could change. */
export function checkCapacity(activeCount: number, alreadyActive: boolean): Denial | null {
  if (alreadyActive) return deny(409, "User is already a participant");
  if (activeCount >= LIMITS.groupMax) return deny(409, `A group has at most ${LIMITS.groupMax} members`);
  return null;
}

/** Leaving is always allowed; removing someone else is a group admin's action. */
export function checkRemove(type: ConversationType, actorRole: Role, isSelf: boolean): Denial | null {
  if (isSelf) return null;
  if (type !== "group") return deny(403, "Only group admins can remove other participants");
  if (actorRole !== "admin") return deny(403, "Only a group admin can remove other participants");
  return null;
}

export function checkRoleChange(type: ConversationType, actorRole: Role, role: Role): Denial | null {
  const denied = requireGroupAdmin(type, actorRole, { noun: "role changes", verb: "change roles" });
  if (denied) return denied;
  if (!assignableRoles(type).includes(role)) return deny(400, `role must be one of: ${assignableRoles(type).join(", ")}`);
  return null;
}

/** Inside the transaction: a group keeps at least one admin. */
export function checkDemotion(currentRole: Role, newRole: Role, adminCount: number): Denial | null {
  if (currentRole === "admin" && newRole !== "admin" && adminCount <= 1) {
    return deny(409, "A group needs at least one admin: promote someone else first");
  }
  return null;
}

/**
 * After `leaverRole` left a group: the member to promote when no admin remains — the one who joined first
 * (user id breaks ties, so the choice is deterministic). Other conversation types have no admins to keep.
 */
export function promotionAfterLeave(type: ConversationType, leaverRole: Role, remaining: readonly Member[]): string | undefined {
  if (type !== "group" || leaverRole !== "admin" || remaining.length === 0) return undefined;
  if (remaining.some((m) => m.role === "admin")) return undefined;
  const oldest = [...remaining].sort(
    (a, b) => a.joinedAt.getTime() - b.joinedAt.getTime() || (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0),
  )[0];
  return oldest.userId;
}

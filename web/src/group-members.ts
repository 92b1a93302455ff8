import { LIMITS } from "../../src/protocol/limits";

/** People a new group takes besides its creator: the server counts 3–8 members with the creator. */
export const OTHERS_MIN = LIMITS.groupMin - 1;
export const OTHERS_MAX = LIMITS.groupMax - 1;

/** The Members field's entries (comma-separated), each once, in the order written. */
export function memberEntries(field: string): string[] {
  return [...new Set(field.split(",").map((s) => s.trim()).filter(Boolean))];
}

const people = (n: number) => (n === 0 ? "no one" : n === 1 ? "1 person" : `${n} people`);

/**
 * The group's other members from the ids the entries name: each person once, the creator left out, as the server
 * counts them. The dialog counted the entries: "bob, bob" passed its 2–7 check and the server refused the group, and
 * seven people plus one's own name were refused before asking.
 */
export function groupOthers(ids: readonly string[], me: string): { ids: string[] } | { error: string } {
  const self = me.toLowerCase();
  const others = [...new Set(ids.map((id) => id.toLowerCase()))].filter((id) => id !== self);
  if (others.length >= OTHERS_MIN && others.length <= OTHERS_MAX) return { ids: others };
  const counted = others.length === ids.length ? "" : ", counting each person once and not you";
  return { error: `A group needs ${OTHERS_MIN} to ${OTHERS_MAX} people besides you; that is ${people(others.length)}${counted}.` };
}

import { ChatApiError } from "../../src/client";

/** The New conversation dialog's fields, as an error can be about them. */
export type Field = "person" | "members" | "name" | "business";
export type Kind = "direct" | "group" | "business";

/** The dialog's error and the fields it is about: it goes once one of them is changed. */
export interface DialogError {
  text: string;
  about: readonly Field[];
}

/**
 * What Create's failure says, and what about. Checked here (a name, a count, an id), it is about the field that
 * holds it; refused by the server, about any field of the kind chosen.
 */
export function dialogError(kind: Kind, err: unknown): DialogError {
  const refused = err instanceof ChatApiError;
  const text = refused ? `Could not create it: ${err.message}` : (err as Error).message;
  const about: readonly Field[] = kind === "direct" ? ["person"] : kind === "business" ? ["business"] : refused ? ["members", "name"] : ["members"];
  return { text, about };
}

/**
 * The error once a field is changed: gone when it was about that field (it stayed, saying the old value was wrong,
 * until Create was pressed again), kept when another field changed.
 */
export function errorAfterEdit(error: DialogError | undefined, field: Field): DialogError | undefined {
  return error && !error.about.includes(field) ? error : undefined;
}

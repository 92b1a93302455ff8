import { h } from "./dom";
import { editChangesNothing } from "./edit-text";
import { sendsOnEnter } from "./keys";
import { lengthProblem, noteAfterInput, type ComposerNote } from "./not-sent";

export interface EditorOptions {
  seq: number;
  /** The message's text when the editor opened. */
  original: string;
  /** An edit kept from an earlier visit: its text, and whether it takes the focus. */
  resumed?: { text: string; focus: boolean };
  /** Stores the new text; throws when it could not (said under the box, which stays open). */
  save(content: string): Promise<void>;
  /** Saved, unchanged or cancelled: the editor is gone and the message's text is back in its place. */
  closed(): void;
}

/** Edit in place: the message's text gives way to a box with Save and Cancel (Enter saves, Escape cancels). */
export function openEditor(text: HTMLElement, o: EditorOptions): void {
  const { seq, resumed } = o;
  const area = h("textarea", { attrs: { id: `edit-${seq}`, rows: 2, dir: "auto" } });
  area.value = resumed?.text ?? o.original;
  const error = h("p", { class: "form-error", attrs: { role: "alert" } });
  // As in the composer: a Too long note goes once the text fits (it stayed until the next Save), any other at once.
  let note: ComposerNote | undefined;
  const say = (next: ComposerNote | undefined) => {
    note = next;
    error.textContent = next?.text ?? "";
  };
  area.addEventListener("input", () => {
    if (note && !noteAfterInput(note, area.value, null)) say(undefined);
  });
  const finish = () => {
    form.replaceWith(text);
    o.closed();
  };
  const save = async () => {
    const content = area.value;
    if (!content.trim()) {
      say({ text: "A message cannot be empty (delete it instead).", about: "other" });
      return;
    }
    const tooLong = lengthProblem(content);
    if (tooLong) {
      say({ text: tooLong, about: "length" });
      return;
    }
    if (editChangesNothing(content, o.original)) return finish();
    try {
      await o.save(content);
      finish();
    } catch (err) {
      say({ text: `Could not save: ${(err as Error).message}`, about: "other" });
    }
  };
  const form = h(
    "form",
    { class: "edit-form", on: { submit: (e) => (e.preventDefault(), void save()) } },
    h("label", { class: "vh", attrs: { for: `edit-${seq}` }, text: "Edit message" }),
    area,
    h("div", { class: "edit-actions" }, h("button", { class: "primary small", attrs: { type: "submit" }, text: "Save" }), h("button", { class: "ghost small", attrs: { type: "button" }, text: "Cancel", on: { click: finish } })),
    error,
  );
  area.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      finish();
    } else if (sendsOnEnter(e)) {
      e.preventDefault();
      void save();
    }
  });
  text.replaceWith(form);
  if (!resumed) {
    area.focus();
    area.select();
  } else if (resumed.focus) {
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }
}

import { h } from "./dom";

/**
 * Dialogs on screen, each with how to dismiss it. A 401 signs the user out while one may be open (Delete this
 * message?, Sign out with unsent messages?, New conversation): it stayed over the sign-in page, and its buttons acted
 * for the user who was gone.
 */
const open = new Set<() => void>();

/** Keeps a dialog to dismiss on sign-out; returns the call that forgets it (when it closes on its own). */
export function trackDialog(dismiss: () => void): () => void {
  open.add(dismiss);
  return () => void open.delete(dismiss);
}

/** Dismisses every open dialog (a question is answered "no"). */
export function closeDialogs(): void {
  for (const dismiss of [...open]) dismiss();
  open.clear();
}

/** An accessible yes/no question in a modal <dialog> (focus moves in, Escape cancels, focus is restored by the caller). */
export function confirmDialog(title: string, body: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const cancel = h("button", { class: "ghost", attrs: { type: "button" }, text: "Cancel" });
    const ok = h("button", { class: "danger-button", attrs: { type: "button" }, text: confirmLabel });
    const dialog = h(
      "dialog",
      { class: "dialog", attrs: { "aria-labelledby": "confirm-title", "aria-describedby": "confirm-body" } },
      h("h2", { attrs: { id: "confirm-title" }, text: title }),
      h("p", { attrs: { id: "confirm-body" }, text: body }),
      h("div", { class: "dialog-actions" }, cancel, ok),
    );
    let answered = false;
    const done = (answer: boolean) => {
      if (answered) return;
      answered = true;
      untrack();
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const untrack = trackDialog(() => done(false));
    cancel.addEventListener("click", () => done(false));
    ok.addEventListener("click", () => done(true));
    dialog.addEventListener("close", () => done(false));
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

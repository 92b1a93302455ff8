import { h } from "./dom";

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
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    cancel.addEventListener("click", () => done(false));
    ok.addEventListener("click", () => done(true));
    dialog.addEventListener("close", () => done(false));
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

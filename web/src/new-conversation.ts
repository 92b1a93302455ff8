import type { Conversation } from "../../src/client";
import type { App } from "./app";
import { trackDialog } from "./confirm";
import { h } from "./dom";
import { UUID_RE } from "./format";
import { OTHERS_MAX, OTHERS_MIN, groupOthers, memberEntries } from "./group-members";
import { LIMITS } from "../../src/protocol/limits";
import { dialogError, errorAfterEdit, type DialogError, type Field, type Kind } from "./new-conversation-error";

/** Demo businesses (any UUID is a business to the local profile service). */
const DEMO_BUSINESSES = [
  { id: "b1000000-0000-4000-8000-00000000000a", label: "Demo business A" },
  { id: "b1000000-0000-4000-8000-00000000000b", label: "Demo business B" },
  { id: "b1000000-0000-4000-8000-00000000000c", label: "Demo business C" },
];

/**
 * "New conversation" in a modal dialog: direct (one person), group (2–7 others, optional name) or business.
 * People are given by demo user name (resolved through the dev sign-in) or by user id.
 */
export function openNewConversationDialog(app: App, trigger: HTMLElement): void {
  const error = h("p", { class: "form-error", attrs: { role: "alert" } });
  let complaint: DialogError | undefined;
  const say = (next: DialogError | undefined) => {
    complaint = next;
    error.textContent = next?.text ?? "";
  };
  // As the composer's notes: the error goes once what it complained about is changed, not at the next Create.
  const edited = (field: Field) => {
    if (complaint && !errorAfterEdit(complaint, field)) say(undefined);
  };
  const radio = (kind: Kind, label: string, checked = false) =>
    h(
      "label",
      { class: "radio" },
      h("input", { attrs: { type: "radio", name: "kind", value: kind, checked }, on: { change: () => show(kind) } }),
      label,
    );
  const person = h("input", { attrs: { id: "nc-person", autocomplete: "off", spellcheck: "false", autocapitalize: "none", "aria-describedby": "nc-person-hint" }, on: { input: () => edited("person") } });
  const members = h("input", { attrs: { id: "nc-members", autocomplete: "off", spellcheck: "false", autocapitalize: "none", "aria-describedby": "nc-members-hint" }, on: { input: () => edited("members") } });
  const groupName = h("input", { attrs: { id: "nc-name", maxlength: 100, autocomplete: "off" }, on: { input: () => edited("name") } });
  const business = h(
    "select",
    { attrs: { id: "nc-business" }, on: { change: () => ((businessOther.hidden = business.value !== "other"), edited("business")) } },
    ...DEMO_BUSINESSES.map((b) => h("option", { attrs: { value: b.id }, text: b.label })),
    h("option", { attrs: { value: "other" }, text: "Other (enter its id)" }),
  );
  const businessId = h("input", { attrs: { id: "nc-business-id", autocomplete: "off", spellcheck: "false" }, on: { input: () => edited("business") } });
  const businessOther = h("div", { class: "field", attrs: { hidden: true } }, h("label", { attrs: { for: "nc-business-id" }, text: "Business id" }), businessId);

  const sections: Record<Kind, HTMLElement> = {
    direct: h(
      "div",
      { class: "field" },
      h("label", { attrs: { for: "nc-person" }, text: "Person" }),
      person,
      h("p", { class: "hint", attrs: { id: "nc-person-hint" }, text: "A demo user name (like bob) or a user id." }),
    ),
    group: h(
      "div",
      {},
      h(
        "div",
        { class: "field" },
        h("label", { attrs: { for: "nc-members" }, text: "Members" }),
        members,
        h("p", { class: "hint", attrs: { id: "nc-members-hint" }, text: `${OTHERS_MIN} to ${OTHERS_MAX} people besides you, each counted once: demo user names or ids, separated by commas.` }),
      ),
      h("div", { class: "field" }, h("label", { attrs: { for: "nc-name" }, text: "Group name (optional)" }), groupName),
    ),
    business: h("div", {}, h("div", { class: "field" }, h("label", { attrs: { for: "nc-business" }, text: "Business" }), business), businessOther),
  };
  let kind: Kind = "direct";
  const show = (k: Kind) => {
    kind = k;
    for (const [name, el] of Object.entries(sections)) el.hidden = name !== k;
    say(undefined);
  };

  const submit = h("button", { class: "primary", attrs: { type: "submit" }, text: "Create" });
  const cancel = h("button", { class: "ghost", attrs: { type: "button" }, text: "Cancel" });
  const form = h(
    "form",
    { attrs: { method: "dialog", novalidate: true } },
    h("h2", { attrs: { id: "nc-title" }, text: "New conversation" }),
    h("fieldset", { class: "kinds" }, h("legend", { text: "Type" }), radio("direct", "Direct", true), radio("group", "Group"), radio("business", "Business")),
    sections.direct,
    sections.group,
    sections.business,
    error,
    h("div", { class: "dialog-actions" }, cancel, submit),
  );
  const dialog = h("dialog", { class: "dialog", attrs: { "aria-labelledby": "nc-title" } }, form);
  show("direct");

  const dismiss = () => {
    untrack();
    dialog.close();
    dialog.remove();
  };
  // Signed out meanwhile (a 401): gone with the app, focus included.
  const untrack = trackDialog(dismiss);
  const close = () => {
    dismiss();
    trigger.focus();
  };
  cancel.addEventListener("click", close);
  dialog.addEventListener("cancel", (e) => {
    e.preventDefault();
    close();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    say(undefined);
    submit.disabled = true;
    submit.textContent = "Creating…";
    const asked = kind;
    try {
      const conversation = await create(app, asked, { person: person.value, members: members.value, name: groupName.value, business: business.value === "other" ? businessId.value : business.value });
      if (!dialog.isConnected) return;
      dismiss();
      app.open(conversation);
    } catch (err) {
      if (app.handleAuthError(err)) return;
      say(dialogError(asked, err));
      submit.disabled = false;
      submit.textContent = "Create";
    }
  });

  document.body.append(dialog);
  dialog.showModal();
  person.focus();
}

async function create(app: App, kind: Kind, v: { person: string; members: string; name: string; business: string }): Promise<Conversation> {
  if (kind === "direct") {
    if (!v.person.trim()) throw new Error("Enter the person to chat with.");
    return app.chat.createDirect(await resolveUser(app, v.person));
  }
  if (kind === "group") {
    const names = memberEntries(v.members);
    // Counted once resolved (a name and its id are one person), but a paste of hundreds is not looked up one by one.
    if (names.length > LIMITS.pageMax) throw new Error(`A group needs ${OTHERS_MIN} to ${OTHERS_MAX} people besides you.`);
    const group = groupOthers(await Promise.all(names.map((n) => resolveUser(app, n))), app.me);
    if ("error" in group) throw new Error(group.error);
    return app.chat.createGroup({ participantIds: group.ids, ...(v.name.trim() ? { name: v.name.trim() } : {}) });
  }
  const id = v.business.trim();
  if (!UUID_RE.test(id)) throw new Error("A business id looks like 8-4-4-4-12 hexadecimal digits.");
  return app.chat.createBusiness({ businessId: id.toLowerCase() });
}

/** A user id as is; a demo user name through the dev sign-in (which names its stable id). */
async function resolveUser(app: App, value: string): Promise<string> {
  const v = value.trim();
  if (UUID_RE.test(v)) return v.toLowerCase();
  if (!/^[A-Za-z0-9._@-]{1,100}$/.test(v)) throw new Error(`“${v}” is not a demo user name or a user id.`);
  const found = await app.chat.devLogin(v);
  return found.user.id;
}

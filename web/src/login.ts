import { ChatApiError, ChatRest } from "../../src/client";
import { h, replace } from "./dom";
import type { Session } from "./session";

const DEMO_USERS = ["alice", "bob", "carol", "dave"];

/** Sign-in for local development: POST /auth/dev-login with any demo user name. */
export function renderLogin(root: HTMLElement, onSignedIn: (s: Session) => void): void {
  const rest = new ChatRest({ baseUrl: "" });
  const error = h("p", { class: "form-error", attrs: { role: "alert" } });
  const input = h("input", {
    attrs: {
      id: "login-kaha",
      name: "kahaId",
      autocomplete: "username",
      required: true,
      maxlength: 100,
      pattern: "[A-Za-z0-9._@\\-]+",
      "aria-describedby": "login-hint",
      spellcheck: "false",
      autocapitalize: "none",
    },
  });
  const submit = h("button", { class: "primary", attrs: { type: "submit" }, text: "Sign in" });

  const signIn = oneAtATime(async (kahaId: string) => {
    error.textContent = "";
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const result = await rest.devLogin(kahaId);
      onSignedIn({ token: result.access_token, userId: result.user.id, kahaId: result.user.kahaId });
    } catch (err) {
      const e = err as ChatApiError;
      error.textContent =
        e.statusCode === 404
          ? "Demo sign-in is not enabled on this server (DEV_LOGIN=false)."
          : e.statusCode === 0
            ? "Cannot reach the server. Check your connection and try again."
            : `Sign-in failed: ${e.message}`;
      submit.disabled = false;
      submit.textContent = "Sign in";
      input.focus();
    }
  });

  const form = h(
    "form",
    {
      class: "login-form",
      attrs: { "aria-labelledby": "login-title", novalidate: true },
      on: {
        submit: (ev) => {
          ev.preventDefault();
          const kahaId = input.value.trim();
          if (!kahaId || !/^[A-Za-z0-9._@-]+$/.test(kahaId)) {
            error.textContent = "Enter a name made of letters, digits and . _ @ -";
            input.setAttribute("aria-invalid", "true");
            input.focus();
            return;
          }
          input.removeAttribute("aria-invalid");
          void signIn(kahaId);
        },
      },
    },
    h("label", { attrs: { for: "login-kaha" }, text: "Demo user name" }),
    input,
    h("p", { class: "hint", attrs: { id: "login-hint" }, text: "Any name signs you in as that local demo user (letters, digits and . _ @ -)." }),
    submit,
    error,
  );

  const quick = h(
    "ul",
    { class: "quick-users", attrs: { "aria-labelledby": "quick-title" } },
    ...DEMO_USERS.map((name) =>
      h("li", {}, h("button", { class: "secondary", attrs: { type: "button" }, text: name, on: { click: () => void signIn(name) } })),
    ),
  );

  replace(
    root,
    h(
      "main",
      { class: "login", attrs: { id: "main" } },
      h(
        "div",
        { class: "login-card" },
        h("h1", { attrs: { id: "login-title" }, text: "Edge Chat" }),
        h("p", { class: "lead", text: "Realtime chat on the edge. Local demo: sign in as anyone." }),
        form,
        h("h2", { attrs: { id: "quick-title" }, class: "quick-title", text: "Or pick a demo user" }),
        quick,
      ),
    ),
  );
  document.title = "Sign in · Edge Chat";
  input.focus();
}

/**
 * `fn`, run only when no run of it is under way (a call meanwhile is ignored). A demo user's button pressed twice (a
 * double click), or pressed while the form's sign-in was on its way, signed in twice: two apps ran, the one not on
 * screen with its own sockets, marking what arrived read and, after a sign-out, still acting for the user who left.
 */
export function oneAtATime<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  let running: Promise<void> | undefined;
  return (...args) => {
    if (running) return running;
    const run = fn(...args).finally(() => {
      running = undefined;
    });
    running = run;
    return run;
  };
}

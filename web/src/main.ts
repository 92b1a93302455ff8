import { App } from "./app";
import { renderLogin } from "./login";
import { clearSession, loadSession, saveSession, type Session } from "./session";

const root = document.getElementById("root")!;
let app: App | undefined;

/**
 * The sign-in page. A link to a conversation opened while signed out stays in the address bar, so signing in opens
 * that conversation (it went to the list); signing out drops the one open, for whoever signs in next.
 */
function showLogin(keepRoute = false): void {
  app = undefined;
  clearSession();
  if (location.hash && !keepRoute) history.replaceState(null, "", location.pathname);
  renderLogin(root, (s) => {
    saveSession(s);
    startApp(s);
  });
}

function startApp(s: Session): void {
  // One app at a time: one left running (a second sign-in) kept its sockets and acted for its user unseen.
  app?.stop();
  app = new App(root, s, () => showLogin());
  void app.start();
}

const saved = loadSession();
if (saved) startApp(saved);
else showLogin(true);

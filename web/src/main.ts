import { App } from "./app";
import { renderLogin } from "./login";
import { clearSession, loadSession, saveSession, type Session } from "./session";

const root = document.getElementById("root")!;
let app: App | undefined;

function showLogin(): void {
  app = undefined;
  clearSession();
  if (location.hash) history.replaceState(null, "", location.pathname);
  renderLogin(root, (s) => {
    saveSession(s);
    startApp(s);
  });
}

function startApp(s: Session): void {
  app = new App(root, s, showLogin);
  void app.start();
}

const saved = loadSession();
if (saved) startApp(saved);
else showLogin();

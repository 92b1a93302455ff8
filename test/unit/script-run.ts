import { spawn } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");

/**
 * Runs one of scripts/ for its usage checks: those answer before anything starts. A script that starts its stack
 * instead (the bug these tests guard against) is killed as soon as it says so. tsx as a loader: one process, so the
 * kill leaves no child running.
 */
export function runScriptUntilStack(script: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { cwd: ROOT, env });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const started = setInterval(() => {
      if (out.includes("PostgreSQL")) child.kill("SIGKILL");
    }, 50);
    child.on("exit", (code) => {
      clearInterval(started);
      resolve({ code, out });
    });
  });
}

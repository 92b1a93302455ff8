import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/stack";
import { tokenCli } from "../../scripts/lib/token";
import { devUserId } from "../../src/lib/ids";

type Outcome = { code: number; stdout: string; stderr: string };

/** The command in-process (a `tsx` start per case cost 30 s of CI); the first test runs the real `npm run token` entry. */
async function tokenWith(env: Record<string, string>, ...args: string[]): Promise<Outcome> {
  let stdout = "";
  let stderr = "";
  const code = await tokenCli(args, { ...process.env, JWT_SECRET: "", ...env }, { out: (l) => (stdout += `${l}\n`), err: (l) => (stderr += `${l}\n`) });
  return { code, stdout, stderr };
}
const token = (...args: string[]) => tokenWith({}, ...args);
/** A refusal: exit 2, nothing on stdout (so `$(npm run -s token)` is empty), the reason on stderr. */
async function refused(...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await token(...args);
  expect(code).toBe(2);
  expect(stdout).toBe("");
  return stderr;
}

describe("npm run token", () => {
  it("mints a token that expires after --ttl; a refusal exits 2 with nothing on stdout (the script itself)", async () => {
    const script = (...args: string[]) =>
      promisify(execFile)(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "scripts/token.ts"), ...args], {
        cwd: ROOT,
        env: { ...process.env, JWT_SECRET: "" },
      });
    const { stdout } = await script("--kahaId", "alice", "--ttl", "15m");
    const claims = decodeJwt(stdout.trim());
    expect(claims.kahaId).toBe("alice");
    expect(claims.exp! - claims.iat!).toBe(900);
    const err = await script("--kahaId", "alice", "--ttl", "0").then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err).toMatchObject({ code: 2, stdout: "" });
    expect(err?.stderr).toMatch(/--ttl 0: /);
  });

  it.each(["0", "0h", "-5"])("refuses --ttl %s with a message instead of a token the Worker would refuse", async (ttl) => {
    expect(await refused("--kahaId", "alice", `--ttl=${ttl}`)).toMatch(new RegExp(`--ttl ${ttl}: .*(more than 0|positive)`));
  });

  it("--help prints the usage (exit 0); a mistyped option is refused with it (exit 2)", async () => {
    const help = await token("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("usage: npm run token -- --kahaId alice");
    const typo = await refused("--kahaid", "alice");
    expect(typo).toContain("Unknown option '--kahaid'");
    expect(typo).toContain("usage: npm run token -- --kahaId alice");
  });

  it("uses --id as the user's id, or the same id for the same kahaId when none is given", async () => {
    const id = "6f7c2b1e-9a4d-4c1b-8e2f-3a5b7c9d1e2f";
    const given = decodeJwt((await token("--kahaId", "alice", "--id", id)).stdout.trim());
    expect(given).toMatchObject({ id, kahaId: "alice" });
    const first = decodeJwt((await token("--kahaId", "bob")).stdout.trim());
    const again = decodeJwt((await token("--kahaId", "bob")).stdout.trim());
    expect(first.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(again.id).toBe(first.id);
  });

  // POST /auth/dev-login trims the kahaId and allows letters, digits and . _ @ -; the script signed "alice " as given,
  // another user (another id) than dev-login's "alice", and kahaIds dev-login refuses.
  it("trims --kahaId and refuses one dev-login refuses, as dev-login does", async () => {
    const spaced = decodeJwt((await token("--kahaId", " alice ")).stdout.trim());
    expect(spaced).toMatchObject({ id: await devUserId("alice"), kahaId: "alice" });
    expect(await refused("--kahaId", "bob!")).toMatch(/--kahaId "bob!": kahaId may contain letters, digits and \. _ @ -/);
  });

  it("refuses an --id that is not a UUID", async () => {
    expect(await refused("--kahaId", "alice", "--id", "nope")).toMatch(/--id nope is not a UUID/);
  });

  it("mints a service token with --role admin, and refuses any other role instead of a user's token that gets 403", async () => {
    expect(decodeJwt((await token("--kahaId", "ops", "--role", "admin")).stdout.trim())).toMatchObject({ kahaId: "ops", role: "admin" });
    expect(await refused("--kahaId", "ops", "--role", "service")).toMatch(/--role service: the Worker knows only --role admin/);
  });

  it("says on stderr when it signs with a JWT_SECRET from the shell, which npm run dev's Worker refuses", async () => {
    const other = await tokenWith({ JWT_SECRET: "another-deployments-secret-0123456789abcdef" }, "--kahaId", "alice");
    expect(decodeJwt(other.stdout.trim())).toMatchObject({ kahaId: "alice" });
    expect(other.stderr).toContain("signed with JWT_SECRET from the environment, not the local secret");
    expect((await token("--kahaId", "alice")).stderr).toBe("");
  });
});

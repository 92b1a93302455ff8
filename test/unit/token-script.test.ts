import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/stack";
import { devUserId } from "../../src/lib/ids";

const run = promisify(execFile);
const token = (...args: string[]) => tokenWith({}, ...args);
const tokenWith = (env: Record<string, string>, ...args: string[]) =>
  run(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "scripts/token.ts"), ...args], {
    cwd: ROOT,
    env: { ...process.env, JWT_SECRET: "", ...env },
  });

describe("npm run token", () => {
  it("mints a token that expires after --ttl", async () => {
    const { stdout } = await token("--kahaId", "alice", "--ttl", "15m");
    const claims = decodeJwt(stdout.trim());
    expect(claims.kahaId).toBe("alice");
    expect(claims.exp! - claims.iat!).toBe(900);
  });

  it.each(["0", "0h", "-5"])("refuses --ttl %s with a message instead of a token the Worker would refuse", async (ttl) => {
    const err = await token("--kahaId", "alice", `--ttl=${ttl}`).then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stdout).toBe("");
    expect(err?.stderr).toMatch(new RegExp(`--ttl ${ttl}: .*(more than 0|positive)`));
  });

  it("--help prints the usage (exit 0); a mistyped option is refused with it (exit 2)", async () => {
    expect((await token("--help")).stdout).toContain("usage: npm run token -- --kahaId alice");
    const err = await token("--kahaid", "alice").then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stderr).toContain("Unknown option '--kahaid'");
    expect(err?.stderr).toContain("usage: npm run token -- --kahaId alice");
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
    const err = await token("--kahaId", "bob!").then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stdout).toBe("");
    expect(err?.stderr).toMatch(/--kahaId "bob!": kahaId may contain letters, digits and \. _ @ -/);
  });

  it("refuses an --id that is not a UUID", async () => {
    const err = await token("--kahaId", "alice", "--id", "nope").then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stdout).toBe("");
    expect(err?.stderr).toMatch(/--id nope is not a UUID/);
  });

  it("mints a service token with --role admin, and refuses any other role instead of a user's token that gets 403", async () => {
    expect(decodeJwt((await token("--kahaId", "ops", "--role", "admin")).stdout.trim())).toMatchObject({ kahaId: "ops", role: "admin" });
    const err = await token("--kahaId", "ops", "--role", "service").then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stdout).toBe("");
    expect(err?.stderr).toMatch(/--role service: the Worker knows only --role admin/);
  });

  it("says on stderr when it signs with a JWT_SECRET from the shell, which npm run dev's Worker refuses", async () => {
    const other = await tokenWith({ JWT_SECRET: "another-deployments-secret-0123456789abcdef" }, "--kahaId", "alice");
    expect(decodeJwt(other.stdout.trim())).toMatchObject({ kahaId: "alice" });
    expect(other.stderr).toContain("signed with JWT_SECRET from the environment, not the local secret");
    expect((await token("--kahaId", "alice")).stderr).toBe("");
  });
});

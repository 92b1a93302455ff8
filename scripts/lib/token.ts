// The `npm run token` command (scripts/token.ts).
import { parseArgs } from "node:util";
import { devUserId, isUuid } from "../../src/lib/ids.js";
import { signDevToken } from "../../src/lib/jwt.js";
import { kahaIdField } from "../../src/protocol/requests.js";
import { LOCAL_JWT_SECRET } from "./stack.js";

function ttlSeconds(raw: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(raw);
  if (!m) throw new Error(`--ttl ${raw}: use a positive number with s, m, h or d (e.g. 1h)`);
  const seconds = Number(m[1]) * ({ "": 1, s: 1, m: 60, h: 3600, d: 86400 } as const)[m[2] as "" | "s" | "m" | "h" | "d"];
  // signDevToken leaves `exp` out for 0, and the Worker refuses tokens without exp (JWT_REQUIRE_EXP defaults to true).
  if (seconds <= 0) throw new Error(`--ttl ${raw}: must be more than 0 (a token without an expiry is refused by the Worker)`);
  return seconds;
}

export interface TokenOutput {
  out(line: string): void;
  err(line: string): void;
}

/**
 * The whole command: `args` as after `npm run token --`, JWT_SECRET read from `env`. Answers the exit code (a refused
 * argument is reported on `err` and answers 2). A module of its own so the tests run it in-process.
 */
export async function tokenCli(args: string[], env: Record<string, string | undefined>, io: TokenOutput): Promise<number> {
  try {
    await run(args, env, io);
    return 0;
  } catch (err) {
    io.err((err as Error).message);
    return 2;
  }
}

const USAGE = "usage: npm run token -- --kahaId alice [--id <uuid>] [--ttl 1h] [--role admin] [--json]";

// --help, and a mistyped option, answered "Unknown option '--help'" alone (exit 2).
function parseOptions(args: string[]) {
  try {
    return parseArgs({
      args,
      options: {
        help: { type: "boolean", short: "h" },
        kahaId: { type: "string" },
        id: { type: "string" },
        ttl: { type: "string", default: "1h" },
        role: { type: "string" },
        json: { type: "boolean" },
      },
    }).values;
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${USAGE}`);
  }
}

async function run(args: string[], env: Record<string, string | undefined>, io: TokenOutput): Promise<void> {
  const values = parseOptions(args);
  if (values.help) {
    io.out(USAGE);
    return;
  }
  if (values.kahaId === undefined) throw new Error(USAGE);
  // dev-login's own rule: "alice " was signed as given, another user than dev-login's "alice".
  const checked = kahaIdField.safeParse(values.kahaId);
  if (!checked.success) throw new Error(`--kahaId ${JSON.stringify(values.kahaId)}: ${checked.error.issues.map((i) => i.message).join("; ")}`);
  const kahaId = checked.data;
  if (values.id && !isUuid(values.id)) throw new Error(`--id ${values.id} is not a UUID`);
  // Any other role (a typo, "service") minted a plain user's token: the operations routes then answered 403.
  if (values.role !== undefined && values.role !== "admin") {
    throw new Error(`--role ${values.role}: the Worker knows only --role admin (a service token); leave --role out for a user's token`);
  }
  const id = values.id ?? (await devUserId(kahaId));
  const secret = env.JWT_SECRET || LOCAL_JWT_SECRET;
  // `npm run dev`'s Worker always has the local secret: a JWT_SECRET left in the shell (another deployment's) made
  // the token the banner tells you to get a 401 there, with nothing saying why. stderr, so $(npm run -s token) stays the token.
  if (env.JWT_SECRET && env.JWT_SECRET !== LOCAL_JWT_SECRET) {
    io.err("note: signed with JWT_SECRET from the environment, not the local secret: `npm run dev` refuses it (unset JWT_SECRET for a local token)");
  }
  const token = await signDevToken({ id, kahaId, role: values.role }, secret, ttlSeconds(values.ttl!));
  if (values.json) io.out(JSON.stringify({ access_token: token, user: { id, kahaId } }));
  else io.out(token);
}


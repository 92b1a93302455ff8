// `npm run migrate`: applies migrations/*.sql to DATABASE_URL. Locally set PG_BRIDGE (host:port of a running
// bridge, e.g. the one `npm run dev` starts on 127.0.0.1:5434); against Neon leave it unset.
import path from "node:path";
import { runMigrations } from "./lib/migrate.js";
import { redactUrl, ROOT } from "./lib/stack.js";

async function main() {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error("Set DATABASE_URL (and PG_BRIDGE=127.0.0.1:5434 for a local server behind the dev bridge).");
  console.log(`Migrating ${redactUrl(databaseUrl)} ...`);
  const result = await runMigrations({
    databaseUrl,
    bridge: process.env.PG_BRIDGE || undefined,
    dir: path.join(ROOT, "migrations"),
    log: (line) => console.log(line),
    warn: (line) => console.warn(line),
  });
  const unknown = result.unknown.length > 0 ? `, ${result.unknown.length} applied that this code does not know (see the warning above)` : "";
  console.log(`${result.applied.length} applied, ${result.skipped} already up to date${unknown}.`);
}

main().catch((err: Error) => {
  console.error(`✗ ${err.message}`);
  process.exit(1);
});

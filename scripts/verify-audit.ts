// `npm run audit:verify -- [--conversation <id>] [--global] [--json]`
//   Recomputes the audit log's hash chains straight from Postgres (DATABASE_URL, and PG_BRIDGE for the local
//   WebSocket bridge; both default to .dev.vars) and reports the first broken row of each chain.
// `npm run audit:verify -- --url https://chat.example.com --token <service token> [--conversation <id>]`
//   Asks a running Worker instead (POST /operations/audit/verify; capped at 200 000 rows per call).
// `--max-rows <n>` stops after n rows (default: none straight from Postgres, the Worker's cap of 200 000 via --url).
// Exit code: 0 every chain intact, 1 a chain is broken, 2 usage or connection error (an unknown --conversation too),
// 3 verification incomplete (the row cap was reached before every row was checked: no break among those checked, the
// rest unknown), 4 nothing to verify (no audit entry in scope: not evidence that anything is intact).
import { verifyAuditCli } from "./lib/verify-audit.js";

verifyAuditCli(process.argv.slice(2), process.env, { out: (line) => console.log(line), err: (line) => console.error(line) }).then((code) =>
  process.exit(code),
);

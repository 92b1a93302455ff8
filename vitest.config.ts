import { defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";

/**
 * Three projects: unit (Node), workers (inside workerd via vitest-pool-workers) and e2e (Node clients against
 * `wrangler dev`). `npm test` (scripts/test.ts) starts the local stack first and passes its addresses in STACK_*.
 */
const stackVars = (): Record<string, string> => {
  const raw = process.env.STACK_WORKER_VARS;
  if (!raw) throw new Error("Run the suite with `npm test` (it starts the local stack the tests need).");
  return JSON.parse(raw) as Record<string, string>;
};

export default defineConfig({
  test: {
    // Logs of passing tests are noise; a failing test shows its own.
    silent: "passed-only",
    projects: [
      {
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], environment: "node", testTimeout: 30_000 },
      },
      {
        plugins: [
          cloudflareTest({
            main: "./src/index.ts",
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: { bindings: { ...stackVars(), WRITE_THROUGH_DEADLINE_MS: "1500" } },
          }),
        ],
        test: { name: "workers", include: ["test/workers/**/*.test.ts"], testTimeout: 30_000 },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // End-to-end files share one wrangler dev and one database; run them one file at a time.
          fileParallelism: false,
        },
      },
      {
        // Reliability under injected faults (Postgres down/slow/reset, Redis, profile service, workerd kill -9,
        // eviction). Minutes long: only `npm run test:faults` runs it; `npm test` passes --project=!faults.
        test: {
          name: "faults",
          include: ["test/reliability/**/*.test.ts"],
          environment: "node",
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});

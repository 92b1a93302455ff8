import { configDefaults, defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";

/**
 * Projects: unit (Node), workers (inside workerd via vitest-pool-workers), e2e (Node clients against `wrangler dev`),
 * browser (Chromium), their *-serial twins (tests that switch shared faults on; a second pass) and faults
 * (`npm run test:faults`). `npm test` (scripts/test.ts) starts the local stack first and passes its addresses in STACK_*.
 */
const stackVars = (): Record<string, string> => {
  const raw = process.env.STACK_WORKER_VARS;
  if (!raw) throw new Error("Run the suite with `npm test` (it starts the local stack the tests need).");
  return JSON.parse(raw) as Record<string, string>;
};

/**
 * TEST_EXCLUDE: comma-separated globs left out of every project (CI's pass on real servers: see .ci/run). In each
 * project's own `exclude`: vitest's `--exclude` did not reach a project that sets one, so the workers project ran
 * `test/workers/business-closing.test.ts` (a minute of waiting) in CI's second pass although .ci/run left it out.
 */
const excluded = (process.env.TEST_EXCLUDE ?? "").split(",").map((g) => g.trim()).filter(Boolean);
const exclude = (...own: string[]) => [...configDefaults.exclude, ...own, ...excluded];

const workersPool = () =>
  cloudflareTest({
    main: "./src/index.ts",
    wrangler: { configPath: "./wrangler.toml" },
    miniflare: {
      bindings: { ...stackVars(), WRITE_THROUGH_DEADLINE_MS: "1500", TEST_BRIDGE_CONTROL: process.env.STACK_BRIDGE_URL ?? "" },
    },
  });

export default defineConfig({
  test: {
    // Logs of passing tests are noise; a failing test shows its own.
    silent: "passed-only",
    projects: [
      {
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], exclude: exclude(), environment: "node", testTimeout: 30_000 },
      },
      {
        plugins: [workersPool()],
        test: { name: "workers", include: ["test/workers/**/*.test.ts"], exclude: exclude("**/*.serial.test.ts"), testTimeout: 30_000 },
      },
      {
        // Tests that switch shared faults on (the Postgres bridge down): run after the others, one file at a time.
        plugins: [workersPool()],
        test: { name: "workers-serial", include: ["test/workers/**/*.serial.test.ts"], exclude: exclude(), fileParallelism: false, testTimeout: 60_000 },
      },
      {
        test: {
          name: "e2e-serial",
          include: ["test/e2e/**/*.serial.test.ts"],
          exclude: exclude(),
          environment: "node",
          testTimeout: 90_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          exclude: exclude("**/*.serial.test.ts"),
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // End-to-end files share one wrangler dev and one database; run them one file at a time.
          fileParallelism: false,
        },
      },
      {
        test: {
          // The web app in Chromium (playwright-core driving Debian's /usr/bin/chromium) against the same wrangler dev.
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          exclude: exclude(),
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
      {
        // Reliability under injected faults (Postgres down/slow/reset, Redis, profile service, workerd kill -9,
        // eviction). Minutes long: only `npm run test:faults` runs it; `npm test` leaves it out (scripts/test.ts).
        test: {
          name: "faults",
          include: ["test/reliability/**/*.test.ts"],
          exclude: exclude(),
          environment: "node",
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});

import { describe, expect, it } from "vitest";
import { ANCHORS_KEY } from "../../src/jobs/audit-anchor-store";
import { createRedis } from "../../src/lib/redis";
import { anchorRun, chainOf, config, verify } from "./audit-helpers";

/**
 * Wipes every anchor in the shared Redis: in the serial pass, where no other file runs beside it (run with the others,
 * it took away the anchor a test of the verify script had just written, test/unit/operations.test.ts).
 */
describe("audit anchors kept outside Postgres", () => {
  it("anchor every chain again after Redis lost the anchors (a flush, a new Redis, `npm run dev` restarted)", async () => {
    const { conversationId } = await chainOf(2);
    await anchorRun();
    expect(await verify(conversationId)).toMatchObject({ ok: true, anchoredChains: 1 });
    // Every anchor gone at once, as a Redis that lost its data has them (other files' chains only lose their anchors
    // until the next run: no test elsewhere counts them).
    await createRedis(config).del(ANCHORS_KEY);
    expect(await verify(conversationId)).toMatchObject({ ok: true, anchoredChains: 0 });
    // The chain has no new entries: only a run that starts over from the oldest entry anchors it again.
    await anchorRun();
    expect(await verify(conversationId)).toMatchObject({ ok: true, anchoredChains: 1 });
  });
});

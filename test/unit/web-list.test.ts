import { describe, expect, it } from "vitest";
import { ListReloads, toDrop, type Listed } from "../../web/src/list-refresh";

const at = (minute: number) => `2026-01-01T00:${String(minute).padStart(2, "0")}:00.000Z`;
const conv = (id: string, minute: number): Listed => ({ id, lastActivity: at(minute) });
const lastPage = (...conversations: Listed[]) => ({ conversations, nextCursor: null });

describe("the web app's conversation list after a reconnect", () => {
  it("keeps an old group the user is added to while the list reloads, though the page read before the add omits it", () => {
    const reloads = new ListReloads();
    const reload = reloads.begin(at(30));
    // Added to a group whose last message is from minute 5: pushed as conversation_created during the request.
    reloads.arrive("old-group");
    const held = [conv("direct", 30), conv("old-group", 5)];
    expect(toDrop(held, lastPage(conv("direct", 30)), reload)).toEqual([]);
    reload.end();
  });

  it("still drops what the user was removed from while offline, and an arrival removed again during the reload", () => {
    const reloads = new ListReloads();
    const reload = reloads.begin(at(30));
    reloads.arrive("added-then-removed");
    reloads.remove("added-then-removed");
    const held = [conv("direct", 30), conv("gone-offline", 20), conv("added-then-removed", 5)];
    expect(toDrop(held, lastPage(conv("direct", 30)), reload).sort()).toEqual(["added-then-removed", "gone-offline"]);
    reload.end();
  });

  it("counts only arrivals during this reload: not before it began, not after it ended", () => {
    const reloads = new ListReloads();
    reloads.arrive("before");
    const first = reloads.begin(at(30));
    first.end();
    reloads.arrive("after-first");
    const second = reloads.begin(at(30));
    const held = [conv("before", 10), conv("after-first", 10)];
    expect(toDrop(held, lastPage(), first).sort()).toEqual(["after-first", "before"]);
    expect(toDrop(held, lastPage(), second).sort()).toEqual(["after-first", "before"]);
    // Two reloads at once (two quick reconnects): an arrival counts for each.
    const third = reloads.begin(at(30));
    reloads.arrive("during-both");
    expect(toDrop([conv("during-both", 1)], lastPage(), second)).toEqual([]);
    expect(toDrop([conv("during-both", 1)], lastPage(), third)).toEqual([]);
  });

  it("keeps what moved after the request was sent, and with more pages what is older than this page's oldest", () => {
    const reload = new ListReloads().begin(at(30));
    const page = { conversations: [conv("a", 30), conv("b", 20)], nextCursor: "next" };
    const held = [conv("a", 30), conv("moved", 31), conv("on-later-page", 10), conv("gone", 25)];
    expect(toDrop(held, page, reload)).toEqual(["gone"]);
  });
});

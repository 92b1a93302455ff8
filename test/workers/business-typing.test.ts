import { afterEach, describe, expect, it } from "vitest";
import { api, newUser } from "./helpers";
import { closeSockets, newBusiness, openChat, readyAgent, trackSocket } from "./business-helpers";
import { openSocket, waitFor, type TestSocket } from "./sockets";

afterEach(closeSockets);

const frameOf = (s: TestSocket, type: string, match: (data: any) => boolean = () => true) =>
  waitFor(() => s.frames.find((f) => f.type === type && match(f.data)), type);

describe("typing in a business conversation that closes", () => {
  it("ends the typing under way at the close, and refuses typing afterwards (the other side saw typing… in a chat that takes no message)", async () => {
    const biz = await newBusiness();
    const agent = await readyAgent(biz);
    const customer = await newUser("customer");
    const chat = await openChat(customer, biz.id);
    const [mine, theirs] = [await openSocket(`/conversations/${chat.body.id}/ws`, customer), await openSocket(`/conversations/${chat.body.id}/ws`, agent)];
    for (const s of [mine, theirs]) {
      trackSocket(s.ws);
      await frameOf(s, "ready");
    }
    mine.ws.send(JSON.stringify({ type: "start_typing", data: {} }));
    await frameOf(theirs, "typing_start", (d) => d.userId === customer.id);

    expect((await api("POST", `/business/conversations/${chat.body.id}/close`, { token: agent.token, body: { reason: "solved" } })).status).toBe(200);
    await frameOf(theirs, "typing_stop", (d) => d.userId === customer.id);

    mine.ws.send(JSON.stringify({ type: "start_typing", data: {}, id: "t2" }));
    const refused = await waitFor(() => mine.frames.find((f) => f.id === "t2"), "the answer to start_typing");
    expect(refused).toMatchObject({ type: "error", data: { code: "conflict" } });
    expect(theirs.frames.filter((f) => f.type === "typing_start")).toHaveLength(1);
  });
});

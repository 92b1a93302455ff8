import { describe, expect, it } from "vitest";
import { ChatApiError, ChatRest, ConversationSocket } from "../../src/client";
import { errorFromFrame } from "../../src/client/errors";
import { composerNote, lengthProblem, mayRetry, noteAfterInput, notSentAlert, refusalNote, sendOrRefusal } from "../../web/src/not-sent";
import { editChangesNothing } from "../../web/src/edit-text";

/** A conversation socket of the real SDK that never connects: what it takes stays in its outbox. */
function idleSocket(): ConversationSocket {
  const rest = new ChatRest({ baseUrl: "http://chat.test", token: "t", fetch: async () => new Response("{}") });
  return new ConversationSocket(rest, "ws://chat.test", "00000000-0000-4000-8000-0000000000c0", async () => "00000000-0000-4000-8000-000000000001", {
    WebSocket: class {} as never,
    watchNetwork: false,
  });
}

const closedBy = (cause: ChatApiError) => new ChatApiError({ statusCode: 0, message: `Not acknowledged before the socket closed: ${cause.message}`, code: "closed", cause });

describe("the web app's Not sent messages: Retry or Dismiss only", () => {
  it("offers Retry when the refusal was about the moment: rate limited, the service unavailable, no answer", () => {
    expect(mayRetry(errorFromFrame({ code: "rate_limited", message: "Too many frames" }))).toBe(true);
    expect(mayRetry(errorFromFrame({ code: "unavailable", message: "Database unavailable" }))).toBe(true);
    expect(mayRetry(errorFromFrame({ code: "internal", message: "Internal error" }))).toBe(true);
    expect(mayRetry(closedBy(new ChatApiError({ statusCode: 0, message: "Gave up after 5 attempts", code: "gave_up" })))).toBe(true);
    expect(mayRetry(closedBy(new ChatApiError({ statusCode: 503, message: "Service Unavailable" })))).toBe(true);
  });

  it("offers Dismiss only when the same message would be refused again: invalid, too long, closed, not a member", () => {
    expect(mayRetry(errorFromFrame({ code: "bad_request", message: "content: at most 4000 characters" }))).toBe(false);
    expect(mayRetry(errorFromFrame({ code: "conflict", message: "The conversation is closed" }))).toBe(false);
    expect(mayRetry(errorFromFrame({ code: "forbidden", message: "Not a participant" }))).toBe(false);
    expect(mayRetry(closedBy(new ChatApiError({ statusCode: 403, message: "No longer a participant", code: "forbidden" })))).toBe(false);
    expect(mayRetry(closedBy(new ChatApiError({ statusCode: 404, message: "Conversation not found", code: "forbidden" })))).toBe(false);
  });

  it("tells a screen reader which message was not sent, and why, when it happens while the conversation is open", () => {
    const closed = errorFromFrame({ code: "conflict", message: "The conversation is closed" });
    expect(notSentAlert("too  late\n", closed)).toBe("Message not sent: “too late”. The conversation is closed.");
    const limited = errorFromFrame({ code: "rate_limited", message: "Too many frames." });
    expect(notSentAlert("x".repeat(100), limited)).toBe(`Message not sent: “${"x".repeat(59)}…”. Too many frames. Retry is offered.`);
  });

  it("keeps the composer's text, with the reason, when the SDK refuses a message at once as too large for a frame", async () => {
    const socket = idleSocket();
    // One character of content, and 11,000 control characters of six bytes each as JSON: over the 64 KiB frame.
    const pasted = `a${"\u0001".repeat(11_000)}`;
    const refused = sendOrRefusal(socket, pasted, "cm-1");
    expect(refused).toBeDefined();
    const error = await refused;
    expect(error?.code).toBe("too_large");
    expect(socket.outbox()).toEqual([]);
    expect(refusalNote(error!)).toBe("Not sent: the message is too large to send. Shorten it (pasted control characters take the most room).");
    // The note stays while the text is still too large (a keystroke, a few characters cut) and goes once it fits.
    const note = composerNote(error!);
    expect(noteAfterInput(note, `${pasted}b`, null)).toEqual(note);
    expect(noteAfterInput(note, pasted.slice(0, -50), null)).toEqual(note);
    expect(noteAfterInput(note, pasted.slice(0, 10_950), "00000000-0000-4000-8000-0000000000aa")).toEqual(note);
    expect(noteAfterInput(note, pasted.slice(0, 5_000), null)).toBeUndefined();
    // What the SDK takes goes to its outbox: the composer may clear, and a later refusal comes as send_failed.
    expect(sendOrRefusal(socket, "hello", "cm-2")).toBeUndefined();
    expect(socket.outbox().map((e) => e.content)).toEqual(["hello"]);
    // A reply goes out as one: the message it answers travels with it.
    expect(sendOrRefusal(socket, "yes, noon", "cm-4", "00000000-0000-4000-8000-0000000000aa")).toBeUndefined();
    expect(socket.outbox().at(-1)).toMatchObject({ content: "yes, noon", replyToId: "00000000-0000-4000-8000-0000000000aa" });
    // Any other refusal on the spot is said in the SDK's words.
    socket.close("left");
    const closed = (await sendOrRefusal(socket, "late", "cm-3"))!;
    expect(refusalNote(closed)).toBe("Not sent: The conversation socket is closed");
    // Any other note goes at the first change of the text.
    expect(noteAfterInput(composerNote(closed), "late!", null)).toBeUndefined();
  });

  it("keeps the composer's Too long note until the text is short enough", () => {
    const long = lengthProblem("é".repeat(4_002));
    expect(long).toBe("Too long: 4,002 characters, at most 4,000.");
    const note = { text: long!, about: "length" as const };
    expect(noteAfterInput(note, "é".repeat(4_001), null)).toBe(note);
    expect(noteAfterInput(note, "é".repeat(4_000), null)).toBeUndefined();
  });
});

describe("saving an edit of a message", () => {
  it("sends nothing when the text differs only in what the server drops: spaces at either end, controls, composition", () => {
    expect(editChangesNothing("  see you at 5 \n", "see you at 5")).toBe(true);
    expect(editChangesNothing("see you\u0000 at 5", "see you at 5")).toBe(true);
    expect(editChangesNothing("cafe\u0301", "caf\u00e9")).toBe(true);
    expect(editChangesNothing("see you at 6", "see you at 5")).toBe(false);
    expect(editChangesNothing("see  you at 5", "see you at 5")).toBe(false);
  });
});

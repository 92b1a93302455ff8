import { describe, expect, it } from "vitest";
import { sendsOnEnter } from "../../web/src/keys";

const enter = { key: "Enter", shiftKey: false, isComposing: false, keyCode: 13 };

describe("the web app's Enter key in the composer and the message editor", () => {
  it("sends on Enter alone; Shift+Enter adds a line", () => {
    expect(sendsOnEnter(enter)).toBe(true);
    expect(sendsOnEnter({ ...enter, shiftKey: true })).toBe(false);
    expect(sendsOnEnter({ ...enter, key: "a", keyCode: 65 })).toBe(false);
  });

  it("does not send on the Enter that confirms an IME composition, in Chrome (isComposing) or Safari (keyCode 229 only)", () => {
    expect(sendsOnEnter({ ...enter, isComposing: true, keyCode: 229 })).toBe(false);
    // Safari: the keydown comes after compositionend, so isComposing is false already.
    expect(sendsOnEnter({ ...enter, isComposing: false, keyCode: 229 })).toBe(false);
  });
});

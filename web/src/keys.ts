/** What of a keydown decides whether Enter sends. */
export type EnterKey = Pick<KeyboardEvent, "key" | "shiftKey" | "isComposing" | "keyCode">;

/**
 * Whether a keydown in a message box sends (or saves): Enter alone. Shift+Enter adds a line, and the Enter that
 * confirms an IME composition (Japanese, Chinese, Korean input) only confirms it: Safari fires that keydown after
 * compositionend, with isComposing already false, and only keyCode 229 ("being processed by the IME") tells. Checked
 * on isComposing alone, Safari sent the half-written text at the first Enter of every conversion.
 */
export function sendsOnEnter(e: EnterKey): boolean {
  return e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229;
}

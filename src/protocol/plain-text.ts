// Its own module: the domain's schemas (business hours) use it, and protocol/requests imports those.

/**
 * Short user text (names, skills, reasons): no control characters and no unpaired surrogates. Postgres stores a lone
 * surrogate as U+FFFD (a skill of "billing \ud800" was saved as "billing �" and answered 200), and inside JSON, as in
 * an audit entry, refuses it; a JSON parameter with `\u0000` is refused too.
 */
// Without flags (Cc is U+0000–U+001F and U+007F–U+009F; a surrogate counts only as half of a pair): the OpenAPI
// generator glues a regex's flags to its source, and "^[^\p{Cc}\p{Cs}]*$/u" in the document matched no value at
// all. This form means the same with or without the u flag, so a validator reading the document agrees.
export const PLAIN_TEXT = /^(?:[^\u0000-\u001F\u007F-\u009F\uD800-\uDFFF]|[\uD800-\uDBFF][\uDC00-\uDFFF])*$/;
export const PLAIN_TEXT_MESSAGE = "must not contain control characters or unpaired surrogates";

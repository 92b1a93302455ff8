// Its own module, free of zod: the SDK loads it at run time (its frame-size check), and the SDK loads no schema code.

/** Limits of contract §5, shared by the Worker, the Durable Objects and the SDK. */
export const LIMITS = {
  contentMaxChars: 4000,
  /**
   * Content as written (UTF-16 units, before the trim and the removal of control characters) that a body or frame may
   * carry: a bound on the work of normalising, checked by the schemas before the character limit is.
   */
  contentMaxRawUnits: 4000 * 4,
  groupMin: 3,
  groupMax: 8,
  pageMax: 100,
  frameMaxBytes: 64 * 1024,
  bodyMaxBytes: 64 * 1024,
  clientMessageIdMax: 128,
  searchQueryMax: 500,
} as const;

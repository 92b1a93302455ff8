// Its own module, free of zod: the SDK loads it at run time (its frame-size check), and the SDK loads no schema code.

/** Limits of contract §5, shared by the Worker, the Durable Objects and the SDK. */
export const LIMITS = {
  contentMaxChars: 4000,
  groupMin: 3,
  groupMax: 8,
  pageMax: 100,
  frameMaxBytes: 64 * 1024,
  bodyMaxBytes: 64 * 1024,
  clientMessageIdMax: 128,
  searchQueryMax: 500,
} as const;

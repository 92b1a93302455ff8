import type { Hook } from "@hono/zod-openapi";
import { HttpError } from "../lib/errors";

type ValidationResult = Parameters<Hook<unknown, never, string, unknown>>[0];

/** zod failures become the contract's 400 with one message per issue ("field: problem"). */
export function validationHook(result: ValidationResult): void {
  if (result.success) return;
  const messages = result.error.issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") return `unknown field(s): ${issue.keys.join(", ")}`;
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  throw new HttpError(400, messages);
}

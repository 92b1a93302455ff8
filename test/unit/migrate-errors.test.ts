import { describe, expect, it } from "vitest";
import { explainForDev, MigrationChangedError } from "../../scripts/lib/migrate";

describe("npm run dev on a local database that predates an edited migration", () => {
  it("says which folder to delete to start the embedded database over", () => {
    const err = explainForDev(new MigrationChangedError("0006_user_online.sql"), "/home/me/edge-chat/.data/pg") as Error;
    expect(err.message).toContain("Migration 0006_user_online.sql was changed after it was applied");
    expect(err.message).toContain("delete /home/me/edge-chat/.data/pg and run `npm run dev` again");
  });

  it("gives no such advice for a database of your own (DATABASE_URL), or for other failures", () => {
    const changed = new MigrationChangedError("0006_user_online.sql");
    expect(explainForDev(changed, undefined)).toBe(changed);
    const other = new Error("Migration 0007_x.sql failed: syntax error");
    expect(explainForDev(other, "/tmp/pg")).toBe(other);
  });
});

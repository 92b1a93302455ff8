import { describe, expect, it } from "vitest";
import { createApp } from "../../src/worker/app";
import { api } from "./helpers";

const UNDOCUMENTED = new Set(["/openapi.json", "/api/docs"]);

describe("OpenAPI document", () => {
  it("documents every route the app serves, with the same methods", async () => {
    const doc = (await api("GET", "/openapi.json")).body as { paths: Record<string, Record<string, unknown>> };
    const missing: string[] = [];
    for (const route of createApp().routes) {
      if (route.method === "ALL" || UNDOCUMENTED.has(route.path)) continue;
      const path = route.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}").replace(/\/$/, "") || "/";
      const entry = doc.paths[path] ?? doc.paths[`${path}/`];
      if (!entry?.[route.method.toLowerCase()]) missing.push(`${route.method} ${path}`);
    }
    expect(missing).toEqual([]);
  });

  it("declares bearer auth and the shared resource schemas", async () => {
    const doc = (await api("GET", "/openapi.json")).body;
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
    for (const name of ["Message", "Conversation", "Participant", "Profile"]) expect(doc.components.schemas[name], name).toBeDefined();
  });
});

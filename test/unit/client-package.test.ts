import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildClient } from "../../scripts/build-client";

/** Specifiers of a module's static and dynamic imports and re-exports (comments, which quote examples, left out). */
function specifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  return [...code.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)["']([^"']+)["']/gm)].map((m) => m[1]);
}

describe("SDK package (npm run build:client)", () => {
  let out: string;
  let tmp: string;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "edge-chat-client-"));
    out = await buildClient(path.join(tmp, "client"));
  }, 120_000);

  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("emits index.js, index.d.ts and a package.json whose exports point at them", async () => {
    for (const f of ["index.js", "index.d.ts", "package.json", "protocol/resources.d.ts"]) expect(existsSync(path.join(out, f)), f).toBe(true);
    const pkg = JSON.parse(await readFile(path.join(out, "package.json"), "utf8"));
    expect(pkg).toMatchObject({ name: "@edge-chat/client", type: "module", sideEffects: false });
    expect(pkg.exports["."]).toMatchObject({ types: "./index.d.ts", import: "./index.js" });
    expect(pkg.dependencies ?? {}).toEqual({});
  });

  it("index.js loads only files of the package (no schema code, nothing from the repository around it)", async () => {
    const seen = new Set<string>();
    const queue = [path.join(out, "index.js")];
    while (queue.length > 0) {
      const file = queue.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      for (const spec of specifiers(await readFile(file, "utf8"))) {
        const rel = path.relative(out, file);
        expect(spec, `${rel} imports a package`).toMatch(/^\.\.?\//);
        const target = path.resolve(path.dirname(file), spec);
        expect(path.relative(out, target).startsWith(".."), `${rel} reaches outside: ${spec}`).toBe(false);
        expect(existsSync(target), `${rel}: ${spec} is missing`).toBe(true);
        queue.push(target);
      }
    }
    const loaded = [...seen].map((f) => path.relative(out, f));
    expect(loaded).toContain("conversation.js");
    // The limits the SDK checks before sending (frame size) are the server's own: that one module, free of zod.
    expect(loaded.filter((f) => f.startsWith("protocol") || f.startsWith("domain"))).toEqual([path.join("protocol", "limits.js")]);
    // And Node's own ESM resolution agrees (extensions present, nothing missing).
    const sdk = await import(pathToFileURL(path.join(out, "index.js")).href);
    expect(typeof sdk.ChatClient).toBe("function");
    expect(typeof sdk.ConversationSocket).toBe("function");
  });

  it("the type declarations reference only files of the package (and zod, for the schema types)", async () => {
    const files: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(path.join(dir, e.name));
        else if (e.name.endsWith(".d.ts")) files.push(path.join(dir, e.name));
      }
    };
    await walk(out);
    for (const file of files) {
      for (const spec of specifiers(await readFile(file, "utf8"))) {
        if (spec === "zod") continue;
        expect(spec, path.relative(out, file)).toMatch(/^\.\.?\/.*\.js$/);
        const target = path.resolve(path.dirname(file), spec.replace(/\.js$/, ".d.ts"));
        expect(path.relative(out, target).startsWith(".."), `${path.relative(out, file)}: ${spec}`).toBe(false);
        expect(existsSync(target), `${path.relative(out, file)}: ${spec}`).toBe(true);
      }
    }
    const rest = await readFile(path.join(out, "rest.d.ts"), "utf8");
    // Business results are typed from the server's schemas, not `unknown`.
    expect(rest).not.toMatch(/Promise<unknown>/);
    expect(rest).toMatch(/closeBusinessConversation\(conversationId: string, reason\?: string\): Promise<BusinessClosed>/);
  });
});

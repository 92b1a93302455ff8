/**
 * Builds the SDK as a publishable package: `npm run build:client` → dist/client (ES modules + .d.ts + package.json).
 *
 * src/client imports types from the shared schemas (src/protocol, and src/domain/business-hours through them). A
 * package cannot reach outside itself, so those files are staged next to the SDK (`./protocol`, `./domain`) and every
 * relative import gets its `.js` extension, which Node's ESM resolution requires. The schema files are compiled too
 * (their .d.ts carry the result types) but index.js never loads them: the SDK only imports their types.
 */
import { execFileSync } from "node:child_process";
import { cp, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Shared files the SDK's types come from, and where they go in the package. */
/**
 * What the SDK's package carries besides src/client: the whole of src/protocol (its schemas import each other, so a
 * new file there, listed by hand, was missed: `plain-text.ts` broke the build) and the domain files those import.
 */
const SHARED_DOMAIN = ["business-hours.ts"];

async function sharedFiles(): Promise<[from: string, to: string][]> {
  const protocol = (await readdir(path.join(ROOT, "src/protocol"))).filter((f) => f.endsWith(".ts"));
  return [...protocol.map((f): [string, string] => [`src/protocol/${f}`, `protocol/${f}`]), ...SHARED_DOMAIN.map((f): [string, string] => [`src/domain/${f}`, `domain/${f}`])];
}

/** Adds `.js` to relative specifiers (`from "./x"`, `import("./x")`) and maps `../protocol/` to `./protocol/`. */
export function rewriteImports(source: string, fromClient: boolean): string {
  return source.replace(/(\bfrom\s+|\bimport\(\s*)(["'])(\.\.?\/[^"']+)\2/g, (_m, lead: string, q: string, spec: string) => {
    let s = fromClient ? spec.replace(/^\.\.\/(protocol|domain)\//, "./$1/") : spec;
    if (!/\.(js|json)$/.test(s)) s += ".js";
    return `${lead}${q}${s}${q}`;
  });
}

export async function buildClient(outDir = path.join(ROOT, "dist/client")): Promise<string> {
  // Inside the repository (the staged schema files resolve `zod` from its node_modules), one per build: concurrent
  // builds (a test's, a developer's) never share a stage.
  const stage = path.join(ROOT, "dist", `.client-stage-${process.pid}-${Date.now().toString(36)}`);
  await rm(outDir, { recursive: true, force: true });
  try {
    await stageAndCompile(stage, outDir);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  await cp(path.join(ROOT, "src/client/package.json"), path.join(outDir, "package.json"));
  return outDir;
}

async function stageAndCompile(stage: string, outDir: string): Promise<void> {
  await mkdir(path.join(stage, "protocol"), { recursive: true });
  await mkdir(path.join(stage, "domain"), { recursive: true });
  for (const f of await readdir(path.join(ROOT, "src/client"))) {
    if (!f.endsWith(".ts")) continue;
    const src = await readFile(path.join(ROOT, "src/client", f), "utf8");
    await writeFile(path.join(stage, f), rewriteImports(src, true));
  }
  for (const [from, to] of await sharedFiles()) await writeFile(path.join(stage, to), rewriteImports(await readFile(path.join(ROOT, from), "utf8"), false));
  const tsc = path.join(ROOT, "node_modules/typescript/bin/tsc");
  // tsconfig.client.json holds the options; this stage's own config only points them at the stage and the output.
  const config = path.join(stage, "tsconfig.json");
  await writeFile(
    config,
    JSON.stringify({ extends: path.join(ROOT, "tsconfig.client.json"), compilerOptions: { rootDir: stage, outDir }, include: [path.join(stage, "**/*.ts")] }),
  );
  execFileSync(process.execPath, [tsc, "-p", config], { cwd: ROOT, stdio: "inherit" });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildClient(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
  console.log(`SDK package built in ${path.relative(process.cwd(), out) || "."}`);
}

import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/**
 * The web app: plain TypeScript + DOM, bundled by Vite into dist/web, which wrangler serves as static assets at `/`
 * (wrangler.toml [assets]). `npm run build:web` builds it; `npm run dev` and `npm test` build it before wrangler starts.
 * `npx vite --config web/vite.config.ts` serves it with hot reload, proxying the API to `npm run dev` on :8787.
 */
const api = process.env.CHAT_API ?? "http://127.0.0.1:8787";
const apiPaths = ["/auth", "/conversations", "/messages", "/notifications", "/realtime", "/ws", "/health", "/business", "/profiles", "/openapi.json", "/api"];

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  publicDir: "public",
  logLevel: "warn",
  build: {
    outDir: fileURLToPath(new URL("../dist/web", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: Object.fromEntries(apiPaths.map((p) => [p, { target: api, changeOrigin: true, ws: p.endsWith("ws") || p === "/conversations" }])),
  },
});

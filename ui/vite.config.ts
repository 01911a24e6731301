import { defineConfig } from "vite";

// Preact's JSX without a plugin: esbuild compiles it with Preact's automatic runtime. Everything
// the page needs ends up in dist/ (no CDN at run time); the server embeds dist/ at build time.
export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    sourcemap: false,
    target: "es2020",
  },
});

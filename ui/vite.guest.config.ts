import { defineConfig } from "vite";

// The guest page (`/join/<token>`), which `dyad serve` embeds from ui/dist-guest
// (crates/server/src/guest.rs): fixed file names, served under /join/.
export default defineConfig({
  clearScreen: false,
  base: "/join/",
  build: {
    target: "es2022",
    outDir: "dist-guest",
    emptyOutDir: true,
    sourcemap: false,
    rollupOptions: {
      input: "guest.html",
      output: { entryFileNames: "guest.js", assetFileNames: "guest[extname]", inlineDynamicImports: true },
    },
  },
});

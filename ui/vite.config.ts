import { defineConfig } from "vitest/config";

// The page is served by Tauri from ui/dist (tauri.conf.json `frontendDist`).
export default defineConfig({
  clearScreen: false,
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, sourcemap: false },
  test: { environment: "jsdom", globals: true, setupFiles: ["src/test-setup.ts"] },
});

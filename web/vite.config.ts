import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The dashboard: Preact + TypeScript, JSX compiled by Vite's built-in Oxc transform (no plugin).
// Built into dist/web, which the controller serves (src/controller/web.ts). `--outDir` overrides.
const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
  },
});

/**
 * Build of the web app (`npm run build:web` at the root): `index.html` (the app) and `embed.html`
 * (the embedding example) into `packages/web/dist`, which the anchor serves at `/`.
 */
import { resolve } from 'node:path'
import { defineConfig } from 'vite'

const here = import.meta.dirname

export default defineConfig({
  root: here,
  base: './',
  build: {
    outDir: resolve(here, 'dist'),
    emptyOutDir: true,
    target: 'es2023',
    sourcemap: true,
    chunkSizeWarningLimit: 2048,
    rollupOptions: { input: { main: resolve(here, 'index.html'), embed: resolve(here, 'embed.html') } },
  },
  resolve: {
    // Inside this repository the peer package is read from its sources (see .npmrc).
    conditions: ['can-swarm-source', 'browser', 'module', 'development|production'],
    alias: {
      // Automerge's WASM is served as a binary asset (src/main.ts); its base64 copy stays out.
      '@automerge/automerge/automerge.wasm.base64': resolve(here, 'src/shims/automerge-base64.ts'),
    },
  },
  server: { host: '127.0.0.1', proxy: { '/api': 'http://127.0.0.1:7700' } },
  preview: { host: '127.0.0.1' },
})

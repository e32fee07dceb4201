// Builds the Countersign Authenticator web app (web/authenticator) into dist/web/authenticator,
// which the server serves at /authenticator/ (src/http/routes/authenticator-app.ts).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: './',
  publicDir: 'public',
  build: {
    outDir: fileURLToPath(new URL('../../dist/web/authenticator', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
  },
});

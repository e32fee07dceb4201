import { existsSync } from 'node:fs';
import { relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

/**
 * Serves the Countersign Authenticator web app (web/authenticator, built by `npm run build` into
 * dist/web/authenticator) at /authenticator/, where activation links lead
 * (`<public url>/authenticator#activate=CODE`; the code stays in the fragment and never reaches
 * a server log). The app uses relative addresses only, so it also works behind a path prefix.
 */

/** The built app: three levels above this file (src/http/routes or dist/http/routes) is the project. */
export const AUTHENTICATOR_APP_DIR = fileURLToPath(new URL('../../../dist/web/authenticator/', import.meta.url));

/** What the app may load: only itself and its own server (no inline script, no third party). */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "worker-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const authenticatorAppRoutes: FastifyPluginAsync<{ dir?: string }> = async (app, options) => {
  const root = options.dir ?? AUTHENTICATOR_APP_DIR;
  // The app's scope is /authenticator/: the bare path moves there, keeping the link's fragment.
  app.get('/authenticator', { schema: { hide: true } }, (_request, reply) => reply.redirect('authenticator/', 302));
  if (!existsSync(root)) {
    app.get('/authenticator/*', { schema: { hide: true } }, (_request, reply) =>
      reply.code(503).type('text/plain; charset=utf-8').send('The Countersign Authenticator web app is not built. Run `npm run build` (npm start does it) and reload.\n'),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/authenticator/',
    decorateReply: false,
    index: ['index.html'],
    cacheControl: false,
    schemaHide: true,
    setHeaders(reply, path) {
      reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
      reply.header('x-content-type-options', 'nosniff');
      reply.header('referrer-policy', 'no-referrer');
      // Built files (root/assets/…) have content hashes in their names and never change; the rest
      // must be re-checked. The path is taken relative to the root: where the app is installed
      // (which may itself contain an assets directory) does not count.
      reply.header('cache-control', relative(root, path).startsWith(`assets${sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
      if (path.endsWith('.webmanifest')) reply.header('content-type', 'application/manifest+json; charset=utf-8');
    },
  });
};

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { AUTHENTICATOR_APP_DIR, authenticatorAppRoutes } from '../../src/http/routes/authenticator-app.js';
import { createTestApp } from '../support/harness.js';

/** How the server hands out the authenticator web app (its behaviour in a browser: test/browser). */
describe('the authenticator web app as served', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const step of cleanup) await step();
  });

  it('moves /authenticator to /authenticator/ (a relative redirect, so the link’s fragment and any path prefix survive) and serves the built app with a strict CSP', async () => {
    const t = await createTestApp();
    cleanup.push(() => t.close());
    const bare = await t.app.inject({ method: 'GET', url: '/authenticator' });
    expect(bare.statusCode).toBe(302);
    expect(bare.headers.location).toBe('authenticator/');
    const shell = await t.app.inject({ method: 'GET', url: '/authenticator/' });
    expect(shell.statusCode).toBe(200);
    expect(shell.headers['content-type']).toContain('text/html');
    expect(shell.body).toContain('<link rel="manifest" href="manifest.webmanifest"');
    expect(shell.headers['content-security-policy']).toContain("default-src 'self'");
    expect(shell.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(shell.headers['x-content-type-options']).toBe('nosniff');
    expect(shell.headers['cache-control']).toBe('no-cache');
    const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(shell.body)?.[1];
    expect(script).toBeDefined();
    const asset = await t.app.inject({ method: 'GET', url: `/authenticator/${script}` });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const worker = await t.app.inject({ method: 'GET', url: '/authenticator/sw.js' });
    expect(worker.statusCode).toBe(200);
    expect(worker.headers['cache-control']).toBe('no-cache');
    expect((await t.app.inject({ method: 'GET', url: '/authenticator/nothing-here.js' })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/authenticator/../package.json' })).statusCode).toBe(404);
    expect(AUTHENTICATOR_APP_DIR.endsWith(join('dist', 'web', 'authenticator') + '/')).toBe(true);
  });

  it('says how to build the app when it is not built, instead of a bare 404', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'countersign-no-app-'));
    rmSync(empty, { recursive: true });
    const app = Fastify();
    await app.register(authenticatorAppRoutes, { dir: empty });
    cleanup.push(() => app.close());
    const response = await app.inject({ method: 'GET', url: '/authenticator/' });
    expect(response.statusCode).toBe(503);
    expect(response.body).toContain('npm run build');
  });
});

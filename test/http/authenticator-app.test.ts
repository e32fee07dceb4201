import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
    // inject() would normalize a literal `..`: these reach the static handler as sent.
    for (const url of ['/authenticator/%2e%2e/package.json', '/authenticator/..%2fpackage.json', '/authenticator/%2e%2e%2fpackage.json']) {
      const escaped = await t.app.inject({ method: 'GET', url });
      expect([403, 404], url).toContain(escaped.statusCode);
      expect(escaped.body).not.toContain('"name": "countersign"');
    }
    expect(AUTHENTICATOR_APP_DIR.endsWith(join('dist', 'web', 'authenticator') + '/')).toBe(true);
  });

  it('marks only the files under the app’s own assets/ immutable, wherever the app is installed', async () => {
    // An install path that itself contains /assets/ must not make index.html or sw.js immutable.
    const base = mkdtempSync(join(tmpdir(), 'countersign-app-'));
    cleanup.push(async () => rmSync(base, { recursive: true, force: true }));
    const root = join(base, 'assets', 'countersign', 'authenticator');
    mkdirSync(join(root, 'assets'), { recursive: true });
    writeFileSync(join(root, 'index.html'), '<!doctype html><title>app</title>');
    writeFileSync(join(root, 'sw.js'), 'self.addEventListener("fetch", () => {});');
    writeFileSync(join(root, 'assets', 'x.js'), 'export {};');
    const app = Fastify();
    await app.register(authenticatorAppRoutes, { dir: root });
    cleanup.push(() => app.close());
    const cacheControl = async (url: string) => {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(200);
      return response.headers['cache-control'];
    };
    expect(await cacheControl('/authenticator/')).toBe('no-cache');
    expect(await cacheControl('/authenticator/index.html')).toBe('no-cache');
    expect(await cacheControl('/authenticator/sw.js')).toBe('no-cache');
    expect(await cacheControl('/authenticator/assets/x.js')).toBe('public, max-age=31536000, immutable');
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

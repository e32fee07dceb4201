import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildServer, trustProxyOption } from '../../src/http/server.js';
import { createTestContext, type TestContext } from '../support/harness.js';

/**
 * TIP-01 (SECURITY.md): the caller's address (`request.ip`, used for rate limits, audit records
 * and the address a sign-in is shown with) comes from X-Forwarded-For only through the proxies
 * named in `trusted_proxies`. With none configured, the header is ignored: a client cannot
 * choose its address by sending one.
 */
const load = (env: Record<string, string>, overrides: Record<string, unknown> = {}) => loadConfig({ env, overrides, cwd: '/nonexistent' });

/** What a server with `trustProxy` takes as the caller's address and protocol. */
async function seen(app: FastifyInstance, remoteAddress: string, headers: Record<string, string> = {}): Promise<{ ip: string; protocol: string }> {
  const response = await app.inject({ method: 'GET', url: '/whoami', remoteAddress, headers });
  expect(response.statusCode).toBe(200);
  return response.json();
}

function tinyApp(trustedProxies: readonly string[]): FastifyInstance {
  const app = Fastify({ trustProxy: trustProxyOption({ trustedProxies }) });
  app.get('/whoami', (request) => ({ ip: request.ip, protocol: request.protocol }));
  return app;
}

describe('TIP-01: X-Forwarded-For is believed only from trusted_proxies', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('TIP-01: by default no proxy is trusted, and the option given to Fastify says so', () => {
    expect(load({}).trustedProxies).toEqual([]);
    expect(trustProxyOption(load({}))).toBe(false);
    expect(trustProxyOption(load({ COUNTERSIGN_TRUSTED_PROXIES: '10.0.0.0/8, 2001:db8:1::/48' }))).toEqual(['10.0.0.0/8', '2001:db8:1::/48']);
  });

  it('TIP-01: addresses and CIDR ranges from a list or a comma-separated string, normalized; anything else named, with the setting', () => {
    expect(load({ COUNTERSIGN_TRUSTED_PROXIES: '10.0.0.5, 192.168.0.0/16,2001:db8::1' }).trustedProxies).toEqual(['10.0.0.5/32', '192.168.0.0/16', '2001:db8::1/128']);
    expect(load({}, { trustedProxies: ['10.1.2.3/8', 'loopback', '2001:DB8:1::/48'] }).trustedProxies).toEqual(['10.0.0.0/8', 'loopback', '2001:db8:1::/48']);
    for (const bad of ['10.0.0.0/33', 'proxy.internal', '10.1', '0x0a000001', '10.0.0.0/8/8', '2001:db8::/129', 'true', '*']) {
      expect(() => load({ COUNTERSIGN_TRUSTED_PROXIES: bad }), bad).toThrow(`trusted_proxies (COUNTERSIGN_TRUSTED_PROXIES): "${bad}" is not an IP address or CIDR range`);
    }
    expect(() => load({}, { trustedProxies: [10] })).toThrow('trusted_proxies (COUNTERSIGN_TRUSTED_PROXIES): must be a list of strings');
    // The old all-or-nothing setting is refused with what to use instead, not silently ignored.
    expect(() => load({ COUNTERSIGN_TRUST_PROXY: 'true' })).toThrow(/COUNTERSIGN_TRUST_PROXY: replaced by COUNTERSIGN_TRUSTED_PROXIES/);
  });

  it('TIP-01: the real server, without trusted proxies, takes the socket address: a forged X-Forwarded-For changes nothing', async () => {
    const t: TestContext = await createTestContext();
    cleanup.push(() => t.close());
    const app = await buildServer(t.services);
    cleanup.push(() => app.close());
    app.get('/whoami', (request) => ({ ip: request.ip, protocol: request.protocol }));
    expect(await seen(app, '10.0.0.5', { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' })).toEqual({ ip: '10.0.0.5', protocol: 'http' });
    expect(await seen(app, '198.51.100.7', { 'x-forwarded-for': '127.0.0.1' })).toEqual({ ip: '198.51.100.7', protocol: 'http' });
  });

  it('TIP-01: the real server with trusted_proxies: the client behind a trusted proxy; a forged hop is skipped, an untrusted peer is itself', async () => {
    const t: TestContext = await createTestContext({ config: { trustedProxies: '10.0.0.0/8' } });
    cleanup.push(() => t.close());
    const app = await buildServer(t.services);
    cleanup.push(() => app.close());
    app.get('/whoami', (request) => ({ ip: request.ip, protocol: request.protocol }));
    expect(await seen(app, '10.0.0.5', { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' })).toEqual({ ip: '203.0.113.9', protocol: 'https' });
    // The client sent its own X-Forwarded-For; the proxy appended the real address: the real one counts.
    expect((await seen(app, '10.0.0.5', { 'x-forwarded-for': '127.0.0.1, 203.0.113.9' })).ip).toBe('203.0.113.9');
    // Two trusted hops.
    expect((await seen(app, '10.0.0.5', { 'x-forwarded-for': '203.0.113.9, 10.20.0.1' })).ip).toBe('203.0.113.9');
    // Not through a trusted proxy: the header is the client's own claim, ignored.
    expect(await seen(app, '198.51.100.7', { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' })).toEqual({ ip: '198.51.100.7', protocol: 'http' });
    // A dual-stack socket reports an IPv4 proxy as IPv4-mapped IPv6: still the trusted proxy.
    expect((await seen(app, '::ffff:10.0.0.5', { 'x-forwarded-for': '203.0.113.9' })).ip).toBe('203.0.113.9');
  });

  it('TIP-01: an IPv6 proxy, and a single trusted address', async () => {
    const app = tinyApp(load({ COUNTERSIGN_TRUSTED_PROXIES: '2001:db8:1::/48, 192.0.2.10' }).trustedProxies);
    cleanup.push(() => app.close());
    expect((await seen(app, '2001:db8:1::10', { 'x-forwarded-for': '2001:db8:ffff::9' })).ip).toBe('2001:db8:ffff::9');
    expect((await seen(app, '2001:db8:1::10', { 'x-forwarded-for': '203.0.113.9' })).ip).toBe('203.0.113.9');
    expect((await seen(app, '2001:db8:2::1', { 'x-forwarded-for': '203.0.113.9' })).ip).toBe('2001:db8:2::1');
    expect((await seen(app, '192.0.2.10', { 'x-forwarded-for': '2001:db8:ffff::9' })).ip).toBe('2001:db8:ffff::9');
    expect((await seen(app, '192.0.2.11', { 'x-forwarded-for': '2001:db8:ffff::9' })).ip).toBe('192.0.2.11');
  });
});

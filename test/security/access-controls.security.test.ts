import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * Access controls under attack, on every store of this run (SQLite, and PostgreSQL when
 * configured): a one-time bypass is used once however many sign-ins race for it (BYP-01);
 * nothing of it crosses tenants; a remember token is bound to its user and application, stored
 * only as a hash, and dead the moment it is revoked (SES-04, SES-05); and a forged
 * X-Forwarded-For never puts a sign-in in a trusted range (TIP-01).
 */
type Reply = { status: number; body: any };

for (const dialect of DIALECTS) {
  describe(`access controls under attack (${dialect})`, () => {
    let t: TestApp;
    let n = 0;
    /** Tenant B: its own administrator key (scoped to B) and application. */
    let adminB: string;
    let appB: string;
    let tenantBId: string;

    async function as(key: string, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown, extra: { headers?: Record<string, string>; remoteAddress?: string } = {}): Promise<Reply> {
      const response = await t.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${key}`, ...extra.headers },
        ...(extra.remoteAddress === undefined ? {} : { remoteAddress: extra.remoteAddress }),
        ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
      });
      return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
    }

    async function userWithTotp(username: string, tenant = 'default', key = t.adminKey): Promise<{ id: string; secret: string }> {
      const created = await as(key, 'POST', `/v1/admin/users?tenant=${tenant}`, { username, mfa_state: 'enforced' });
      expect(created.status).toBe(201);
      const enrolled = await as(key, 'POST', `/v1/admin/users/${username}/methods/totp?tenant=${tenant}`, {});
      const activated = await as(key, 'POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate?tenant=${tenant}`, { code: totpAt(enrolled.body.secret, t.clock.ms()) });
      expect(activated.body.status).toBe('active');
      t.clock.advance(30_000);
      return { id: created.body.id, secret: enrolled.body.secret };
    }

    function nextUser(prefix: string): string {
      n++;
      return `${prefix}${n}@contoso.com`;
    }

    async function settings(values: Record<string, unknown>): Promise<void> {
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', values)).status).toBe(200);
    }

    async function actions(action: string, target: string): Promise<Record<string, unknown>[]> {
      const rows = await t.services.db.selectFrom('audit_events').select(['actor', 'detail']).where('action', '=', action).where('target', '=', target).orderBy('seq').execute();
      return rows.map((r) => ({ actor: r.actor, ...(JSON.parse(r.detail) as Record<string, unknown>) }));
    }

    beforeAll(async () => {
      t = await createTestApp({ dialect });
      const b = await t.admin('POST', '/v1/admin/tenants', { name: 'fabrikam' });
      tenantBId = b.body.id;
      appB = (await t.admin('POST', '/v1/admin/applications?tenant=fabrikam', { name: 'fabrikam app' })).body.api_key;
      const key = await t.admin('POST', `/v1/admin/admin-keys?tenant=${tenantBId}`, { name: 'fabrikam admin' });
      expect(key.status).toBe(201);
      adminB = key.body.api_key;
    });
    afterAll(async () => {
      await t.close();
    });

    describe('BYP-01: a bypass is granted only by an admin, with a reason, used once, and expires', () => {
      it('BYP-01: 50 concurrent preauths for a user with one bypass: exactly one allow / bypass, the rest challenge; one bypass.used', async () => {
        const username = nextUser('race');
        const user = await userWithTotp(username);
        const granted = await t.admin('POST', `/v1/admin/users/${username}/bypass?tenant=default`, { reason: 'race test' });
        expect(granted.status).toBe(201);
        const replies = await Promise.all(Array.from({ length: 50 }, () => t.api('POST', '/v1/preauth', { username })));
        const reasons = replies.map((r) => `${r.status} ${r.body.result}/${r.body.reason}`);
        expect(reasons.filter((r) => r === '200 allow/bypass')).toHaveLength(1);
        expect(reasons.filter((r) => r === '200 challenge/mfa_required')).toHaveLength(49);
        expect(await actions('bypass.used', user.id)).toHaveLength(1);
        const [row] = (await t.admin('GET', `/v1/admin/bypasses?tenant=default&username=${username}`)).body.bypasses;
        expect(row).toMatchObject({ id: granted.body.id, status: 'used' });
      });

      it('BYP-01: 20 concurrent revocations of one bypass: one 204, the rest 409; revoked once', async () => {
        const username = nextUser('revoke');
        const user = await userWithTotp(username);
        const granted = await t.admin('POST', `/v1/admin/users/${username}/bypass?tenant=default`, { reason: 'x' });
        const replies = await Promise.all(Array.from({ length: 20 }, () => t.admin('DELETE', `/v1/admin/bypasses/${granted.body.id}?tenant=default`)));
        expect(replies.filter((r) => r.status === 204)).toHaveLength(1);
        expect(replies.filter((r) => r.status === 409)).toHaveLength(19);
        expect(await actions('bypass.revoked', user.id)).toHaveLength(1);
        expect((await t.api('POST', '/v1/preauth', { username })).body.reason).toBe('mfa_required');
      });

      it('BYP-01: an application key or no key cannot grant, list or revoke (403 / 401), and nothing is stored', async () => {
        const username = nextUser('nonadmin');
        const user = await userWithTotp(username);
        expect((await as(t.appKey, 'POST', `/v1/admin/users/${username}/bypass?tenant=default`, { reason: 'let me in' })).status).toBe(403);
        expect((await as(t.appKey, 'GET', '/v1/admin/bypasses?tenant=default')).status).toBe(403);
        const anonymous = await t.app.inject({ method: 'POST', url: `/v1/admin/users/${username}/bypass?tenant=default`, payload: { reason: 'let me in' } });
        expect(anonymous.statusCode).toBe(401);
        expect(await t.services.db.selectFrom('bypasses').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
        const granted = await t.admin('POST', `/v1/admin/users/${username}/bypass?tenant=default`, { reason: 'x' });
        expect((await as(t.appKey, 'DELETE', `/v1/admin/bypasses/${granted.body.id}?tenant=default`)).status).toBe(403);
        expect((await t.admin('GET', `/v1/admin/bypasses?tenant=default&username=${username}`)).body.bypasses[0].status).toBe('active');
      });

      it('BYP-01: the audit has the actor and the reason; the second sign-in and a sign-in after expiry need MFA', async () => {
        const username = nextUser('audit');
        const user = await userWithTotp(username);
        const granted = await t.admin('POST', `/v1/admin/users/${username}/bypass?tenant=default`, { seconds: 30, reason: 'help desk ticket 17' });
        const [record] = await actions('bypass.granted', user.id);
        expect(record).toEqual({ actor: granted.body.granted_by, bypass: granted.body.id, username, seconds: 30, reason: 'help desk ticket 17' });
        expect(granted.body.granted_by).toMatch(/^admin-key:[\w-]+$/);
        expect((await t.api('POST', '/v1/preauth', { username })).body.reason).toBe('bypass');
        expect((await t.api('POST', '/v1/preauth', { username })).body.reason).toBe('mfa_required');
        await t.admin('POST', `/v1/admin/users/${username}/bypass?tenant=default`, { seconds: 30, reason: 'again' });
        t.clock.advance(30_000);
        expect((await t.api('POST', '/v1/preauth', { username })).body.reason).toBe('mfa_required');
        expect(await actions('bypass.expired', user.id)).toHaveLength(1);
      });

      it('BYP-01 (cross-tenant): tenant B’s admin key cannot grant, list or revoke tenant A’s bypasses; A’s bypass stays active', async () => {
        const username = nextUser('tenanta');
        await userWithTotp(username);
        const granted = await t.admin('POST', `/v1/admin/users/${username}/bypass?tenant=default`, { reason: 'A only' });
        expect(await as(adminB, 'GET', '/v1/admin/bypasses?tenant=default')).toEqual({ status: 404, body: { error: { code: 'NOT_FOUND', message: 'tenant default not found' } } });
        expect((await as(adminB, 'GET', '/v1/admin/bypasses')).body).toEqual({ bypasses: [] });
        expect((await as(adminB, 'GET', `/v1/admin/bypasses?username=${username}`)).status).toBe(404);
        expect((await as(adminB, 'DELETE', `/v1/admin/bypasses/${granted.body.id}`)).status).toBe(404);
        expect((await as(adminB, 'DELETE', `/v1/admin/bypasses/${granted.body.id}?tenant=default`)).status).toBe(404);
        expect((await as(adminB, 'POST', `/v1/admin/users/${username}/bypass`, { reason: 'from B' })).status).toBe(404);
        expect((await as(adminB, 'POST', `/v1/admin/users/${username}/bypass?tenant=default`, { reason: 'from B' })).status).toBe(404);
        const listed = (await t.admin('GET', `/v1/admin/bypasses?tenant=default&username=${username}`)).body.bypasses;
        expect(listed).toEqual([expect.objectContaining({ id: granted.body.id, status: 'active', reason: 'A only' })]);
        // B's application cannot use A's bypass for a user of the same name in B either.
        await userWithTotp(username, 'fabrikam', adminB);
        expect((await as(appB, 'POST', '/v1/preauth', { username })).body.reason).toBe('mfa_required');
        expect((await t.admin('GET', `/v1/admin/bypasses?tenant=default&username=${username}`)).body.bypasses[0].status).toBe('active');
      });

      it('cross-tenant: B’s admin cannot unlock, unblock, list blocked users or forget remembered devices of A', async () => {
        const username = nextUser('blocked');
        await userWithTotp(username);
        await t.admin('POST', `/v1/admin/users/${username}/block?tenant=default`);
        for (const path of [`/v1/admin/users/${username}/unblock`, `/v1/admin/users/${username}/unlock`]) {
          expect((await as(adminB, 'POST', `${path}?tenant=default`)).status, path).toBe(404);
          expect((await as(adminB, 'POST', path)).status, path).toBe(404);
        }
        expect((await as(adminB, 'DELETE', `/v1/admin/users/${username}/remembered-devices?tenant=default`)).status).toBe(404);
        expect((await as(adminB, 'GET', '/v1/admin/blocked-users?tenant=default')).status).toBe(404);
        expect(((await as(adminB, 'GET', '/v1/admin/blocked-users')).body.users as { username: string }[]).map((u) => u.username)).not.toContain(username);
        expect((await t.api('POST', '/v1/preauth', { username })).body.reason).toBe('blocked');
        expect((await t.admin('POST', `/v1/admin/users/${username}/unblock?tenant=default`)).status).toBe(200);
      });
    });

    describe('SES-04 / SES-05: remember tokens are bound, stored hashed, and revocable at once', () => {
      it('SES-04: the token has 256 random bits and only its SHA-256 is stored; no table row, audit record or log line holds it', async () => {
        await settings({ remember_mfa_days: 30, cache_seconds: 0 });
        const username = nextUser('hashed');
        const user = await userWithTotp(username);
        const started = await t.api('POST', '/v1/challenges', { username, method: 'totp' });
        const answered = await t.api('POST', `/v1/challenges/${started.body.id}/answer`, { code: totpAt(user.secret, t.clock.ms()) });
        const token: string = answered.body.remember_token;
        expect(token).toMatch(/^rmt_[A-Za-z0-9_-]{43}$/);
        expect(Buffer.from(token.slice(4), 'base64url')).toHaveLength(32);
        const rows = await t.services.db.selectFrom('remember_tokens').selectAll().where('user_id', '=', user.id).execute();
        expect(rows).toHaveLength(1);
        expect(rows[0]?.token_hash).toBe(createHash('sha256').update(token).digest('hex'));
        const secretPart = token.slice(4);
        for (const table of ['remember_tokens', 'audit_events', 'challenges', 'mfa_successes', 'notifications'] as const) {
          const dump = JSON.stringify(await t.services.db.selectFrom(table).selectAll().execute());
          expect(dump, table).not.toContain(secretPart);
        }
        expect(t.logs.join('\n')).not.toContain(secretPart);
        // Presented to preauth, it is not logged or audited either.
        expect((await t.api('POST', '/v1/preauth', { username, remember_token: token })).body.reason).toBe('remembered_device');
        expect(t.logs.join('\n')).not.toContain(secretPart);
        expect(JSON.stringify(await t.services.db.selectFrom('audit_events').selectAll().execute())).not.toContain(secretPart);
      });

      it('SES-04: a token of user A does not work for user B, for another application, or in another tenant; a remembered sign-in is not a fresh MFA', async () => {
        await settings({ remember_mfa_days: 30, cache_seconds: 600 });
        const alice = nextUser('alice');
        const bob = nextUser('bob');
        const a = await userWithTotp(alice);
        await userWithTotp(bob);
        await userWithTotp(alice, 'fabrikam', adminB);
        expect((await as(adminB, 'PATCH', '/v1/admin/settings', { remember_mfa_days: 30 })).status).toBe(200);
        const other = (await t.admin('POST', '/v1/admin/applications?tenant=default', { name: `other ${n}` })).body.api_key as string;
        const verified = await t.api('POST', '/v1/verify', { username: alice, code: totpAt(a.secret, t.clock.ms()) });
        const token: string = verified.body.remember_token;
        t.clock.advance(601_000); // past the cache, so only the token could allow
        expect((await t.api('POST', '/v1/preauth', { username: alice, remember_token: token })).body.reason).toBe('remembered_device');
        expect((await t.api('POST', '/v1/preauth', { username: bob, remember_token: token })).body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect((await as(other, 'POST', '/v1/preauth', { username: alice, remember_token: token })).body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect((await as(appB, 'POST', '/v1/preauth', { username: alice, remember_token: token })).body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        // A remembered sign-in gives out no new token and records no success that caching could reuse.
        const before = await t.services.db.selectFrom('mfa_successes').select('at').where('user_id', '=', a.id).execute();
        const tokens = await t.services.db.selectFrom('remember_tokens').select('id').where('user_id', '=', a.id).execute();
        const remembered = await t.api('POST', '/v1/preauth', { username: alice, remember_token: token });
        expect(remembered.body).toMatchObject({ result: 'allow', reason: 'remembered_device' });
        expect(remembered.body.remember_token).toBeUndefined();
        expect(await t.services.db.selectFrom('mfa_successes').select('at').where('user_id', '=', a.id).execute()).toEqual(before);
        expect(await t.services.db.selectFrom('remember_tokens').select('id').where('user_id', '=', a.id).execute()).toEqual(tokens);
        expect((await t.api('POST', '/v1/preauth', { username: alice })).body.reason).toBe('mfa_required');
        await settings({ cache_seconds: 0 });
      });

      it('SES-05: revoking remembered devices refuses the old token at the very next preauth, on every application', async () => {
        await settings({ remember_mfa_days: 30, cache_seconds: 0 });
        const username = nextUser('revoked');
        const user = await userWithTotp(username);
        const other = (await t.admin('POST', '/v1/admin/applications?tenant=default', { name: `second ${n}` })).body.api_key as string;
        const first = (await t.api('POST', '/v1/verify', { username, code: totpAt(user.secret, t.clock.ms()) })).body.remember_token as string;
        t.clock.advance(30_000);
        const second = (await as(other, 'POST', '/v1/verify', { username, code: totpAt(user.secret, t.clock.ms()) })).body.remember_token as string;
        expect((await t.api('POST', '/v1/preauth', { username, remember_token: first })).body.reason).toBe('remembered_device');
        expect((await as(other, 'POST', '/v1/preauth', { username, remember_token: second })).body.reason).toBe('remembered_device');
        expect((await t.admin('DELETE', `/v1/admin/users/${username}/remembered-devices?tenant=default`)).body).toEqual({ revoked: 2 });
        expect((await t.api('POST', '/v1/preauth', { username, remember_token: first })).body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect((await as(other, 'POST', '/v1/preauth', { username, remember_token: second })).body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect(await t.services.db.selectFrom('remember_tokens').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
        const [record] = await actions('remembered_devices.revoked', user.id);
        expect(record).toEqual({ actor: expect.stringMatching(/^admin-key:/), count: 2 });
        // Turning remembering off refuses every token at once too.
        t.clock.advance(30_000);
        const fresh = (await t.api('POST', '/v1/verify', { username, code: totpAt(user.secret, t.clock.ms()) })).body.remember_token as string | undefined;
        expect(fresh).toMatch(/^rmt_/);
        await settings({ remember_mfa_days: 0 });
        expect((await t.api('POST', '/v1/preauth', { username, remember_token: fresh })).body.reason).toBe('mfa_required');
      });
      it('SES-05: the user revokes their own remembered devices through the application ("forget my devices"), at once', async () => {
        await settings({ remember_mfa_days: 30, cache_seconds: 0 });
        const username = nextUser('forget');
        const user = await userWithTotp(username);
        const token = (await t.api('POST', '/v1/verify', { username, code: totpAt(user.secret, t.clock.ms()) })).body.remember_token as string;
        expect((await t.api('POST', '/v1/preauth', { username, remember_token: token })).body.reason).toBe('remembered_device');
        expect((await t.api('POST', '/v1/remembered-devices/forget', { username })).body).toEqual({ revoked: 1 });
        expect((await t.api('POST', '/v1/preauth', { username, remember_token: token })).body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        const [record] = await actions('remembered_devices.revoked', user.id);
        expect(record).toEqual({ actor: expect.stringMatching(/^application:/), count: 1 });
        // An unknown user looks like one with nothing remembered; an administrator key is refused.
        expect((await t.api('POST', '/v1/remembered-devices/forget', { username: 'nobody@contoso.com' })).body).toEqual({ revoked: 0 });
        expect((await t.admin('POST', '/v1/remembered-devices/forget', { username })).status).toBe(403);
        expect((await t.api('POST', '/v1/remembered-devices/forget', { username, extra: 1 })).status).toBe(400);
        await settings({ remember_mfa_days: 0 });
      });
    });

    describe('TIP-01: the trusted-IP check uses the application’s ip, never a forwarded header', () => {
      it('TIP-01: a spoofed X-Forwarded-For in a trusted range, from an untrusted peer, does not make preauth allow trusted_ip', async () => {
        await settings({ trusted_ips: ['203.0.113.0/24', '2001:db8:abcd::/48'] });
        const username = nextUser('spoof');
        await userWithTotp(username);
        const spoofed = await as(t.appKey, 'POST', '/v1/preauth', { username }, { remoteAddress: '198.51.100.7', headers: { 'x-forwarded-for': '203.0.113.9', 'x-real-ip': '203.0.113.9' } });
        expect(spoofed.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect(spoofed.body.trace).toContainEqual({ check: 'trusted_ip', said: 'no client IP given' });
        const withIp = await as(t.appKey, 'POST', '/v1/preauth', { username, ip: '198.51.100.7' }, { remoteAddress: '198.51.100.7', headers: { 'x-forwarded-for': '203.0.113.9, 2001:db8:abcd::1' } });
        expect(withIp.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect(withIp.body.trace).toContainEqual({ check: 'trusted_ip', said: '198.51.100.7 is in none of the 2 trusted ranges' });
        // The application's own server sitting in a trusted range does not skip MFA for its users either.
        const fromInside = await as(t.appKey, 'POST', '/v1/preauth', { username }, { remoteAddress: '203.0.113.50' });
        expect(fromInside.body.reason).toBe('mfa_required');
        // The application's word for the user's address is what counts.
        expect((await as(t.appKey, 'POST', '/v1/preauth', { username, ip: '2001:db8:abcd::1' }, { remoteAddress: '198.51.100.7' })).body.reason).toBe('trusted_ip');
        const audited = await t.services.db.selectFrom('audit_events').select('detail').where('action', '=', 'preauth.decided').orderBy('seq', 'desc').limit(4).execute();
        expect(audited.map((r) => (JSON.parse(r.detail) as { ip: string | null }).ip)).toEqual(['2001:db8:abcd::1', null, '198.51.100.7', null]);
        await settings({ trusted_ips: [] });
      });

      it('TIP-01: even behind a trusted proxy, the forwarded client address does not stand in for the application’s ip; a 51st range is refused', async () => {
        const proxied = await createTestApp({ dialect, config: { trustedProxies: '10.0.0.0/8' } });
        try {
          expect((await proxied.admin('PATCH', '/v1/admin/settings?tenant=default', { trusted_ips: ['203.0.113.0/24'] })).status).toBe(200);
          const created = await proxied.admin('POST', '/v1/admin/users?tenant=default', { username: 'proxied@contoso.com', mfa_state: 'enforced' });
          expect(created.status).toBe(201);
          const enrolled = await proxied.admin('POST', '/v1/admin/users/proxied@contoso.com/methods/totp?tenant=default', {});
          await proxied.admin('POST', `/v1/admin/users/proxied@contoso.com/methods/${enrolled.body.method.id}/activate?tenant=default`, { code: totpAt(enrolled.body.secret, proxied.clock.ms()) });
          const response = await proxied.app.inject({
            method: 'POST',
            url: '/v1/preauth',
            remoteAddress: '10.0.0.5',
            headers: { authorization: `Bearer ${proxied.appKey}`, 'x-forwarded-for': '203.0.113.9' },
            payload: { username: 'proxied@contoso.com' },
          });
          expect(response.json()).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
          const fifty = Array.from({ length: 51 }, (_, i) => `10.${i}.0.0/16`);
          expect((await proxied.admin('PATCH', '/v1/admin/settings?tenant=default', { trusted_ips: fifty })).body.error.message).toMatch(/^trusted_ips: at most 50 ranges/);
          expect((await proxied.admin('GET', '/v1/admin/settings?tenant=default')).body.trusted_ips).toEqual(['203.0.113.0/24']);
        } finally {
          await proxied.close();
        }
      });
    });
  });
}

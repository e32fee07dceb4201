import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newKeyPair } from '../support/device.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * Attacks on enrollment links (issue 5 item 1), named after SECURITY.md rows where one fits:
 * BND-03 (binding codes single use and ≥ 112 bits), SES-01 (≥ 128 bits from the CSPRNG), LOG-01
 * (no token in a log), BND-01 (a new credential is told to the user), and tenant isolation.
 */
for (const dialect of DIALECTS) {
  describe(`enrollment links under attack (${dialect})`, () => {
    let t: TestApp;
    let n = 0;
    let fabrikamAdmin: string;
    let fabrikamApp: string;
    const linkUrl = (username: string, tenant = 'default') => `/v1/admin/users/${encodeURIComponent(username)}/enrollment-link?tenant=${tenant}`;
    async function newUser(tenant = 'default', username?: string): Promise<string> {
      n++;
      const name = username ?? `attack${n}@contoso.com`;
      expect((await t.admin('POST', `/v1/admin/users?tenant=${tenant}`, { username: name, mfa_state: 'enabled' })).status).toBe(201);
      return name;
    }
    async function as(key: string, method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown): Promise<{ status: number; body: any }> {
      const response = await t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(body === undefined ? {} : { payload: body as Record<string, unknown> }) });
      return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
    }

    beforeAll(async () => {
      t = await createTestApp({ dialect });
      expect((await t.admin('POST', '/v1/admin/tenants', { name: 'fabrikam' })).status).toBe(201);
      fabrikamAdmin = (await t.admin('POST', '/v1/admin/admin-keys?tenant=fabrikam', { name: 'fabrikam admin' })).body.api_key;
      fabrikamApp = (await t.admin('POST', '/v1/admin/applications?tenant=fabrikam', { name: 'fabrikam app' })).body.api_key;
    });
    afterAll(async () => {
      await t.close();
    });

    it('BND-03: 50 concurrent completions with one link — exactly one wins, the other 49 are refused', async () => {
      const username = await newUser();
      const { token } = (await t.admin('POST', linkUrl(username), { methods: ['totp'] })).body;
      const totp = await as(token, 'POST', '/v1/enrollment/totp', {});
      expect((await as(token, 'POST', '/v1/enrollment/totp/activate', { code: totpAt(totp.body.secret, t.clock.ms()) })).status).toBe(200);
      const answers = await Promise.all(Array.from({ length: 50 }, () => as(token, 'POST', '/v1/enrollment/complete')));
      expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
      expect(answers.filter((a) => a.status === 401)).toHaveLength(49);
      const completed = await t.services.db.selectFrom('audit_events').select('seq').where('action', '=', 'enrollment.completed').where('actor', 'like', 'enrollment-link:%').execute();
      expect(completed).toHaveLength(1);
    });

    it('BND-03: 50 concurrent activations of one pending authenticator with its code — exactly one activates it', async () => {
      const username = await newUser();
      const { token } = (await t.admin('POST', linkUrl(username), { methods: ['totp'] })).body;
      const totp = await as(token, 'POST', '/v1/enrollment/totp', {});
      const code = totpAt(totp.body.secret, t.clock.ms());
      const answers = await Promise.all(Array.from({ length: 50 }, () => as(token, 'POST', '/v1/enrollment/totp/activate', { code })));
      expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
      expect(answers.filter((a) => ![200, 400, 404, 409].includes(a.status))).toEqual([]);
      const methods = await t.services.db.selectFrom('methods').select(['status']).where('id', '=', totp.body.method.id).execute();
      expect(methods).toEqual([{ status: 'active' }]);
    });

    it('SES-01 / BND-03: tokens carry 256 random bits, differ every time, and only their SHA-256 is stored; LOG-01: no token in any log', async () => {
      const username = await newUser();
      const tokens: string[] = [];
      for (let i = 0; i < 5; i++) tokens.push((await t.admin('POST', linkUrl(username))).body.token);
      expect(new Set(tokens).size).toBe(5);
      for (const token of tokens) expect(Buffer.from(token.slice(4), 'base64url')).toHaveLength(32);
      const rows = await t.services.db.selectFrom('enrollment_links').selectAll().execute();
      const dump = JSON.stringify(rows) + JSON.stringify(await t.services.db.selectFrom('audit_events').selectAll().execute()) + JSON.stringify(await t.services.db.selectFrom('notifications').selectAll().execute());
      for (const token of tokens) {
        expect(dump).not.toContain(token);
        expect(dump).not.toContain(token.slice(4));
        expect(rows.map((r) => r.token_hash)).toContain(createHash('sha256').update(token).digest('hex'));
        // Used for a request too: still in no log line.
        await as(token, 'GET', '/v1/enrollment');
      }
      const logs = t.logs.join('\n');
      for (const token of tokens) expect(logs).not.toContain(token.slice(4));
    });

    it('an enrollment token is not accepted by the admin API or the Auth API, and their keys are not accepted by the enrollment API', async () => {
      const username = await newUser();
      const { token } = (await t.admin('POST', linkUrl(username))).body;
      expect((await as(token, 'GET', '/v1/admin/users?tenant=default')).status).toBe(401);
      expect((await as(token, 'POST', linkUrl(username))).status).toBe(401);
      expect((await as(token, 'POST', '/v1/preauth', { username })).status).toBe(401);
      expect((await as(token, 'POST', '/v1/verify', { username, code: '123456' })).status).toBe(401);
      for (const key of [t.adminKey, t.appKey]) {
        const refused = await as(key, 'GET', '/v1/enrollment');
        expect(refused.status).toBe(401);
        expect(refused.body.error.message).toContain('token of the enrollment link');
        expect((await as(key, 'POST', '/v1/enrollment/complete')).status).toBe(401);
      }
      expect((await t.app.inject({ method: 'GET', url: '/v1/enrollment' })).statusCode).toBe(401);
      // A guessed token of the right form is refused like an unknown one.
      expect((await as(`cse_${'A'.repeat(43)}`, 'GET', '/v1/enrollment')).body.error.message).toBe('the enrollment link is not valid: ask your administrator for a new one');
      // The token still works where it belongs.
      expect((await as(token, 'GET', '/v1/enrollment')).status).toBe(200);
    });

    it('TEN-01: a link of tenant A acts only on its own user; tenant B’s administrator cannot make, see or revoke A’s links', async () => {
      const shared = 'same.name@example.com';
      await newUser('default', shared);
      await newUser('fabrikam', shared);
      const { token } = (await t.admin('POST', linkUrl(shared, 'default'), { methods: ['totp'] })).body;
      expect((await as(token, 'GET', '/v1/enrollment')).body).toMatchObject({ username: shared, tenant: 'default' });
      const totp = await as(token, 'POST', '/v1/enrollment/totp', {});
      expect((await as(token, 'POST', '/v1/enrollment/totp/activate', { code: totpAt(totp.body.secret, t.clock.ms()) })).status).toBe(200);
      // B's user of the same name got nothing.
      const bUser = await t.admin('GET', `/v1/admin/users/${shared}?tenant=fabrikam`);
      expect(bUser.body.mfa_state).toBe('enabled');
      expect((await t.admin('GET', `/v1/admin/users/${shared}/methods?tenant=fabrikam`)).body.methods).toEqual([]);
      // A method id of tenant B's user cannot be activated through A's link.
      const bEnroll = await t.admin('POST', `/v1/admin/users/${shared}/methods/totp?tenant=fabrikam`, {});
      expect((await as(token, 'POST', '/v1/enrollment/totp/activate', { code: totpAt(bEnroll.body.secret, t.clock.ms()), method_id: bEnroll.body.method.id })).status).toBe(404);
      expect((await t.admin('GET', `/v1/admin/users/${shared}/methods?tenant=fabrikam`)).body.methods).toEqual([expect.objectContaining({ status: 'pending' })]);
      // B's administrator: not A's tenant.
      for (const [method, url] of [['POST', linkUrl(shared, 'default')], ['GET', linkUrl(shared, 'default')], ['DELETE', linkUrl(shared, 'default')], ['GET', '/v1/admin/registration-campaign?tenant=default']] as const) {
        const refused = await as(fabrikamAdmin, method, url);
        expect([403, 404]).toContain(refused.status);
      }
      // B's administrator acting on its own tenant touches only B's user.
      const bLink = await as(fabrikamAdmin, 'POST', linkUrl(shared, 'fabrikam'));
      expect(bLink.status).toBe(201);
      expect((await as(bLink.body.token, 'GET', '/v1/enrollment')).body).toMatchObject({ username: shared, tenant: 'fabrikam' });
      // B's application cannot snooze A's users (it only sees its own tenant).
      const snooze = await as(fabrikamApp, 'POST', '/v1/registration-campaign/snooze', { username: 'attack1@contoso.com' });
      expect(snooze.status).toBe(404);
    });

    it('BND-01: a pre-registered number is told to the user; a non-admin key cannot pre-register (403)', async () => {
      const username = await newUser();
      const url = `/v1/admin/users/${username}/phones?tenant=default`;
      const body = { number: '+14255550199', type: 'mobile', verified: true, reason: 'verified by the help desk' };
      expect((await as(t.appKey, 'POST', url, body)).status).toBe(403);
      const { token } = (await t.admin('POST', linkUrl(username))).body;
      expect((await as(token, 'POST', url, body)).status).toBe(401);
      expect((await t.admin('GET', `/v1/admin/users/${username}?tenant=default`)).body.phones).toEqual([]);
      expect((await t.admin('POST', url, body)).status).toBe(201);
      const user = await t.services.db.selectFrom('users').select('id').where('username', '=', username).executeTakeFirstOrThrow();
      const notices = await t.services.db.selectFrom('notifications').selectAll().where('user_id', '=', user.id).execute();
      expect(notices.map((r) => r.kind)).toEqual(['phone_preregistered']);
      expect(notices[0]?.detail).not.toContain('4255550199');
    });

    it('a link only adds: it cannot replace a verified phone number (409), so a link holder cannot knock out a working factor', async () => {
      const username = await newUser();
      const url = `/v1/admin/users/${username}/phones?tenant=default`;
      expect((await t.admin('POST', url, { number: '+14255550177', type: 'mobile', verified: true, reason: 'help desk' })).status).toBe(201);
      const { token } = (await t.admin('POST', linkUrl(username), { methods: ['sms', 'voice'] })).body;
      const refused = await as(token, 'POST', '/v1/enrollment/phone', { number: '+14255550666', type: 'mobile' });
      expect(refused.status).toBe(409);
      expect(refused.body.error.message).toContain('a verified mobile number (+1 XXX-XXX-0177) is already registered');
      expect(refused.body.error.message).not.toContain('4255550177');
      // The same number again is refused too, and the working number is untouched: verified, still takes texts.
      expect((await as(token, 'POST', '/v1/enrollment/phone', { number: '+14255550177', type: 'mobile' })).status).toBe(409);
      expect((await t.admin('GET', `/v1/admin/users/${username}?tenant=default`)).body.phones).toEqual([expect.objectContaining({ type: 'mobile', number: '+14255550177', verified: true })]);
      expect((await t.api('POST', '/v1/challenges', { username, method: 'sms' })).status).toBe(201);
      // A number of another type can still be added through the link.
      expect((await as(token, 'POST', '/v1/enrollment/phone', { number: '+14255550178', type: 'office' })).status).toBe(201);
    });

    it('push through a link: at most 3 activation URLs open at once; a device activated with one starts the 15-minute cap', async () => {
      const username = await newUser();
      const { token } = (await t.admin('POST', linkUrl(username), { methods: ['push', 'totp'] })).body;
      const started = await Promise.all(Array.from({ length: 10 }, () => as(token, 'POST', '/v1/enrollment/push', {})));
      expect(started.filter((a) => a.status === 201)).toHaveLength(3);
      const refused = started.filter((a) => a.status !== 201);
      expect(refused).toHaveLength(7);
      for (const r of refused) {
        expect(r.status).toBe(429);
        expect(r.body.error.message).toContain('3 activation links open already');
      }
      const linkRow = await t.services.db.selectFrom('enrollment_links').selectAll().where('token_hash', '=', createHash('sha256').update(token).digest('hex')).executeTakeFirstOrThrow();
      expect(linkRow.first_method_at).toBeNull();
      // Activating a device with one of them counts as registering through the link.
      const code = new URL(started.find((a) => a.status === 201)?.body.activation_url).hash.replace('#activate=', '');
      const activated = await t.app.inject({ method: 'POST', url: '/v1/authenticator/activate', payload: { code, public_key: newKeyPair().publicKey, name: 'Link phone' } });
      expect(activated.statusCode).toBe(201);
      const info = await as(token, 'GET', '/v1/enrollment');
      expect(info.body.expires_at).toBe(new Date(t.clock.ms() + 15 * 60_000).toISOString());
      expect(info.body.mfa_state).toBe('enforced');
      const registered = await t.services.db.selectFrom('audit_events').select(['actor', 'detail']).where('action', '=', 'enrollment.method_registered').where('actor', '=', `enrollment-link:${linkRow.id}`).execute();
      expect(registered).toHaveLength(1);
      expect(JSON.parse(registered[0]?.detail ?? '{}')).toMatchObject({ type: 'push', device: activated.json().device_id });
      // Two remain open; one more may be started, then the limit holds again.
      expect((await as(token, 'POST', '/v1/enrollment/push', {})).status).toBe(201);
      expect((await as(token, 'POST', '/v1/enrollment/push', {})).status).toBe(429);
      // Completing ends the link's open activation URLs: none can activate a device afterwards.
      expect((await as(token, 'POST', '/v1/enrollment/complete')).status).toBe(200);
      const open = await t.services.db.selectFrom('push_activations').select('id').where('enrollment_link_id', '=', linkRow.id).where('used_at', 'is', null).where('expires_at', '>', t.clock.ms()).execute();
      expect(open).toEqual([]);
    });

    it('push through a link: at most 5 activation URLs in the link’s whole life, so a leaked link binds few devices', async () => {
      const username = await newUser();
      const { token } = (await t.admin('POST', linkUrl(username), { methods: ['push'] })).body;
      for (let i = 0; i < 3; i++) expect((await as(token, 'POST', '/v1/enrollment/push', {})).status).toBe(201);
      // They expire unused (10 minutes): places for two more, no more.
      t.clock.advance(11 * 60_000);
      for (let i = 0; i < 2; i++) expect((await as(token, 'POST', '/v1/enrollment/push', {})).status).toBe(201);
      t.clock.advance(11 * 60_000);
      const refused = await as(token, 'POST', '/v1/enrollment/push', {});
      expect(refused.status).toBe(409);
      expect(refused.body.error).toEqual({ code: 'LIMIT_REACHED', message: 'this enrollment link has started 5 authenticator activations, the most one link may: ask your administrator for a new link' });
    });

    it('an administrator’s revocation ends the activation URLs the link opened', async () => {
      const username = await newUser();
      const { token } = (await t.admin('POST', linkUrl(username), { methods: ['push'] })).body;
      const push = await as(token, 'POST', '/v1/enrollment/push', {});
      expect(push.status).toBe(201);
      expect((await t.admin('DELETE', linkUrl(username))).status).toBe(200);
      const code = new URL(push.body.activation_url).hash.replace('#activate=', '');
      const activated = await t.app.inject({ method: 'POST', url: '/v1/authenticator/activate', payload: { code, public_key: newKeyPair().publicKey, name: 'Too late' } });
      expect(activated.statusCode).toBe(404);
    });

    it('a blocked user is refused; a block whose blocked_until has passed is lifted, as for preauth', async () => {
      const username = await newUser();
      const { token } = (await t.admin('POST', linkUrl(username))).body;
      const now = t.clock.ms();
      await t.services.db.updateTable('users').set({ status: 'blocked', blocked_reason: 'fraud', blocked_until: now + 60_000 }).where('username', '=', username).execute();
      const blocked = await as(token, 'GET', '/v1/enrollment');
      expect(blocked.status).toBe(403);
      expect(blocked.body.error.message).toContain('blocked');
      t.clock.advance(60_000);
      expect((await as(token, 'GET', '/v1/enrollment')).status).toBe(200);
      await t.services.db.updateTable('users').set({ blocked_until: null }).where('username', '=', username).execute();
      expect((await as(token, 'GET', '/v1/enrollment')).status).toBe(403);
    });
  });
}

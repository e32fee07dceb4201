import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/http/server.js';
import { activateDevice } from '../support/device.js';
import { createTestApp, createTestContext, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * Conditional access policies as an attack surface, on every store of this run:
 * - nothing crosses tenants: tenant B's administrator can neither see nor change tenant A's
 *   policies and named locations, nor point a policy of B at A's applications;
 * - a policy that blocks, or requires MFA, cannot be got round by what otherwise skips the
 *   second factor: a remember token, a trusted IP, a cached success (TIP-01: pre-auth checks do
 *   not substitute for a factor) — and a block not even by a one-time bypass (BYP-01), which
 *   stays unused;
 * - applications cannot administer policies, nor evaluate them;
 * - WA-03 and the policy block: an application that skips preauth is refused all the same at
 *   every other Auth API entry point — `/v1/verify`, `/v1/challenges` (and a challenge's answer),
 *   `/v1/app-passwords/verify` — with a valid factor in hand; `require_phishing_resistant` refuses
 *   codes, texts, calls and push alike. The tenant's count of enabled policies, which lets
 *   sign-ins skip the policies, follows every change and is seen by every server process at once.
 */
type Reply = { status: number; body: any };

for (const dialect of DIALECTS) {
  describe(`conditional access policies, attacked (${dialect})`, () => {
    let t: TestApp;
    let adminB: string;
    let appB: string;

    async function as(key: string, method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, body?: unknown): Promise<Reply> {
      const response = await t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(body === undefined ? {} : { payload: body as Record<string, unknown> }) });
      return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
    }

    beforeAll(async () => {
      t = await createTestApp({ dialect });
      expect((await t.admin('POST', '/v1/admin/tenants', { name: 'fabrikam' })).status).toBe(201);
      const key = await t.admin('POST', '/v1/admin/admin-keys?tenant=fabrikam', { name: 'fabrikam admin' });
      expect(key.status).toBe(201);
      adminB = key.body.api_key;
      const application = await t.admin('POST', '/v1/admin/applications?tenant=fabrikam', { name: 'fabrikam app' });
      appB = application.body.api_key;
    });
    afterAll(async () => {
      await t.close();
    });

    it("tenant B's administrator cannot see, change, reorder, remove or evaluate tenant A's policies and named locations; A's stay unchanged", async () => {
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'alice@contoso.com', mfa_state: 'enforced', groups: ['staff'] })).status).toBe(201);
      const location = await t.admin('POST', '/v1/admin/named-locations?tenant=default', { name: 'hq', ranges: ['203.0.113.0/24'] });
      const policy = await t.admin('POST', '/v1/admin/policies?tenant=default', { name: 'A: block outside hq', grant: 'block', conditions: { locations: { exclude: ['hq'] } } });
      expect([location.status, policy.status]).toEqual([201, 201]);
      const aBefore = (await t.admin('GET', '/v1/admin/policies?tenant=default')).body;
      const id: string = policy.body.id;

      // Naming A outright: A is absent for B's key.
      expect(await as(adminB, 'GET', '/v1/admin/policies?tenant=default')).toEqual({ status: 404, body: { error: { code: 'NOT_FOUND', message: 'tenant default not found' } } });
      expect((await as(adminB, 'GET', `/v1/admin/named-locations?tenant=${t.tenant.id}`)).status).toBe(404);
      expect((await as(adminB, 'POST', '/v1/admin/policies/evaluate?tenant=default', { username: 'alice@contoso.com' })).status).toBe(404);
      // By A's ids and names, within B: not found.
      expect((await as(adminB, 'GET', '/v1/admin/policies')).body).toEqual({ policies: [] });
      expect((await as(adminB, 'GET', `/v1/admin/policies/${id}`)).status).toBe(404);
      expect((await as(adminB, 'PATCH', `/v1/admin/policies/${id}`, { enabled: false })).status).toBe(404);
      expect((await as(adminB, 'PATCH', '/v1/admin/policies/A: block outside hq', { grant: 'allow_without_mfa' })).status).toBe(404);
      expect((await as(adminB, 'DELETE', `/v1/admin/policies/${id}`)).status).toBe(404);
      expect((await as(adminB, 'PUT', '/v1/admin/policies/order', { ids: [id] })).body.error.message).toMatch(/^ids\[0\]: there is no policy/);
      expect((await as(adminB, 'DELETE', `/v1/admin/named-locations/${location.body.id}`)).status).toBe(404);
      expect((await as(adminB, 'GET', '/v1/admin/named-locations')).body).toEqual({ named_locations: [] });
      // B's policies cannot name A's users, groups, applications or locations.
      const appA = (await t.services.db.selectFrom('applications').select('id').where('tenant_id', '=', t.tenant.id).executeTakeFirstOrThrow()).id;
      expect((await as(adminB, 'POST', '/v1/admin/policies', { name: 'x', grant: 'block', conditions: { applications: { include: [appA] } } })).body.error.message).toMatch(/^conditions\.applications\.include\[0\]: there is no application/);
      expect((await as(adminB, 'POST', '/v1/admin/policies', { name: 'x', grant: 'block', conditions: { users: { include: ['alice@contoso.com'] } } })).status).toBe(400);
      expect((await as(adminB, 'POST', '/v1/admin/policies', { name: 'x', grant: 'block', exclude_group: 'staff' })).status).toBe(400);
      expect((await as(adminB, 'POST', '/v1/admin/policies', { name: 'x', grant: 'block', conditions: { locations: { include: ['hq'] } } })).status).toBe(400);
      // Evaluating in B does not see A's user.
      expect((await as(adminB, 'POST', '/v1/admin/policies/evaluate', { username: 'alice@contoso.com' })).body).toMatchObject({ result: 'deny', reason: 'unknown_user' });
      // B's own policy does not touch A's sign-ins.
      expect((await as(adminB, 'POST', '/v1/admin/policies', { name: 'B blocks all', grant: 'block' })).status).toBe(201);
      expect((await t.api('POST', '/v1/preauth', { username: 'alice@contoso.com', ip: '203.0.113.5' })).body.reason).not.toBe('policy_block');

      expect((await t.admin('GET', '/v1/admin/policies?tenant=default')).body).toEqual(aBefore);
      expect((await t.admin('GET', '/v1/admin/named-locations?tenant=default')).body.named_locations).toHaveLength(1);
      // Nothing B tried was recorded as a change to A.
      const changes = await t.services.db.selectFrom('audit_events').select(['action']).where('tenant_id', '=', t.tenant.id).where('action', 'like', 'policy.%').execute();
      expect(changes.map((c) => c.action)).toEqual(['policy.created']);
    });

    it('applications cannot administer or evaluate policies (403)', async () => {
      for (const [method, url, body] of [
        ['GET', '/v1/admin/policies', undefined],
        ['POST', '/v1/admin/policies', { name: 'x', grant: 'allow_without_mfa' }],
        ['POST', '/v1/admin/policies/evaluate', { username: 'a@b.c' }],
        ['PUT', '/v1/admin/policies/order', { ids: [] }],
        ['POST', '/v1/admin/named-locations', { name: 'x', ranges: ['0.0.0.0/0'] }],
      ] as const) {
        expect((await as(appB, method, url, body)).status, url).toBe(403);
        expect((await as(t.appKey, method, `${url}?tenant=default`, body)).status, url).toBe(403);
      }
      expect((await as(adminB, 'GET', '/v1/admin/policies')).body.policies.map((p: any) => p.name)).toEqual(['B blocks all']);
    });

    it('TIP-01 / BYP-01: a block cannot be got round by a remember token, a trusted IP, a cached success or a bypass; require_mfa not by the first three', async () => {
      const tenant = 'tip01';
      expect((await t.admin('POST', '/v1/admin/tenants', { name: tenant })).status).toBe(201);
      expect((await t.admin('PATCH', `/v1/admin/settings?tenant=${tenant}`, { trusted_ips: ['198.51.100.0/24', '2001:db8::/32'], remember_mfa_days: 14, cache_seconds: 600 })).status).toBe(200);
      const app = await t.admin('POST', `/v1/admin/applications?tenant=${tenant}`, { name: 'vpn' });
      const key: string = app.body.api_key;
      const admin = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown) => t.admin(method, `${path}?tenant=${tenant}`, body);
      expect((await admin('POST', '/v1/admin/users', { username: 'eve@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
      const enrolled = await admin('POST', '/v1/admin/users/eve@contoso.com/methods/totp', {});
      await admin('POST', `/v1/admin/users/eve@contoso.com/methods/${enrolled.body.method.id}/activate`, { code: totpAt(enrolled.body.secret, t.clock.ms()) });
      t.clock.advance(30_000);
      // A real second factor: a remember token and a cached success.
      const started = await as(key, 'POST', '/v1/challenges', { username: 'eve@contoso.com', method: 'totp', context: { ip: '198.51.100.7' } });
      const answered = await as(key, 'POST', `/v1/challenges/${started.body.id}/answer`, { code: totpAt(enrolled.body.secret, t.clock.ms()) });
      expect(answered.body.status).toBe('approved');
      const token: string = answered.body.remember_token;
      expect(token).toMatch(/^rmt_/);
      const signIn = { username: 'eve@contoso.com', ip: '198.51.100.7', remember_token: token };
      const preauth = () => as(key, 'POST', '/v1/preauth', signIn);
      // Without a policy each of them lets the sign-in through.
      expect((await preauth()).body.reason).toBe('trusted_ip');

      expect((await admin('POST', '/v1/admin/policies', { name: 'Lockdown', grant: 'block' })).status).toBe(201);
      expect((await admin('POST', '/v1/admin/users/eve@contoso.com/bypass', { seconds: 600, reason: 'incident 7' })).status).toBe(201);
      for (const ip of ['198.51.100.7', '2001:db8::7']) {
        const blocked = await as(key, 'POST', '/v1/preauth', { ...signIn, ip });
        expect(blocked.body, ip).toMatchObject({ result: 'deny', reason: 'policy_block', methods: [] });
      }
      // The bypass was not used by the blocked sign-ins: it is still open.
      expect((await t.admin('GET', `/v1/admin/bypasses?tenant=${tenant}`)).body.bypasses[0]).toMatchObject({ status: 'active', used_at: null });

      expect((await admin('PATCH', '/v1/admin/policies/Lockdown', { grant: 'require_mfa' })).status).toBe(200);
      // require_mfa lets the administrator's bypass through (once) …
      expect((await preauth()).body.reason).toBe('bypass');
      // … but the trusted IP, the remember token and the cached success no longer skip the factor.
      const required = await preauth();
      expect(required.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
      const said = Object.fromEntries((required.body.trace as { check: string; said: string }[]).map((s) => [s.check, s.said]));
      expect(said['trusted_ip']).toBe('198.51.100.7 is in the trusted range 198.51.100.0/24, but policy "Lockdown" requires MFA');
      expect(said['remembered_device']).toBe('a valid remember token for this user and application, but policy "Lockdown" requires MFA');
      expect(said['cache']).toMatch(/^a second factor succeeded \d+ s ago \(caching: 600 s\), but policy "Lockdown" requires MFA$/);
      // The remember token never appears in a trace or the audit log.
      expect(JSON.stringify(required.body)).not.toContain(token);
      const details = await t.services.db.selectFrom('audit_events').select('detail').execute();
      expect(details.some((d) => (d.detail ?? '').includes(token))).toBe(false);

      // Turning the policy off restores the skips at once.
      expect((await admin('PATCH', '/v1/admin/policies/Lockdown', { enabled: false })).status).toBe(200);
      expect((await preauth()).body.reason).toBe('trusted_ip');
    });

    /** A tenant of its own, its application key and admin/api helpers. */
    async function freshTenant(name: string, settings: Record<string, unknown> = {}) {
      expect((await t.admin('POST', '/v1/admin/tenants', { name })).status).toBe(201);
      if (Object.keys(settings).length > 0) expect((await t.admin('PATCH', `/v1/admin/settings?tenant=${name}`, settings)).status).toBe(200);
      const key: string = (await t.admin('POST', `/v1/admin/applications?tenant=${name}`, { name: 'portal' })).body.api_key;
      const admin = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown) => t.admin(method, `${path}${path.includes('?') ? '&' : '?'}tenant=${name}`, body);
      const api = (method: 'GET' | 'POST', url: string, body?: unknown) => as(key, method, url, body);
      const tenantId = (await t.services.db.selectFrom('tenants').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;
      const policyCount = async () => Number((await sql<{ n: number }>`select policy_count as n from tenants where id = ${tenantId}`.execute(t.services.db)).rows[0]?.n);
      /** A user with an active TOTP app (and any other fields); returns its secret. */
      const totpUser = async (username: string, extra: Record<string, unknown> = {}) => {
        expect((await admin('POST', '/v1/admin/users', { username, mfa_state: 'enforced', ...extra })).status).toBe(201);
        const enrolled = await admin('POST', `/v1/admin/users/${username}/methods/totp`, {});
        expect((await admin('POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate`, { code: totpAt(enrolled.body.secret, t.clock.ms()) })).status).toBe(200);
        return enrolled.body.secret as string;
      };
      return { key, admin, api, tenantId, policyCount, totpUser };
    }
    /** A code of the next time step (the activation used the current one). */
    const nextCode = (secret: string) => {
      t.clock.advance(30_000);
      return totpAt(secret, t.clock.ms());
    };

    it('WA-03 / policy block: a block-legacy policy refuses /v1/app-passwords/verify (policy_block) even with a valid app password; require_phishing_resistant too', async () => {
      const { admin, api, tenantId } = await freshTenant('legacy-block', { app_passwords_allowed: true });
      expect((await admin('POST', '/v1/admin/users', { username: 'mail@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
      const password: string = (await admin('POST', '/v1/admin/users/mail@contoso.com/app-passwords', { name: 'iPhone Mail' })).body.password;
      const verify = (body: Record<string, unknown>) => api('POST', '/v1/app-passwords/verify', { username: 'mail@contoso.com', password, ip: '203.0.113.9', ...body });
      expect((await verify({})).body).toEqual({ result: 'approved', reason: 'approved' });
      const usedAt = new Date(t.clock.ms()).toISOString();
      t.clock.advance(60_000);

      expect((await admin('POST', '/v1/admin/policies', { name: 'Block legacy authentication', grant: 'block', conditions: { client_types: ['legacy'] } })).status).toBe(201);
      // The application never asked preauth: the app password is right, the sign-in refused.
      expect(await verify({})).toEqual({ status: 200, body: { result: 'denied', reason: 'policy_block' } });
      // A wrong password is still a wrong password (the policy is consulted for a right one only), and an unknown user still answers invalid_password.
      expect((await verify({ password: 'abcd-efgh-ijkl-mnop' })).body).toEqual({ result: 'denied', reason: 'invalid_password' });
      expect((await verify({ username: 'nobody@contoso.com' })).body).toEqual({ result: 'denied', reason: 'invalid_password' });
      const denied = await t.services.db.selectFrom('audit_events').select('detail').where('tenant_id', '=', tenantId).where('action', '=', 'app_password.denied').execute();
      const policyDenials = denied.map((d) => JSON.parse(d.detail ?? '{}')).filter((d) => d.reason === 'policy_block');
      expect(policyDenials).toHaveLength(1);
      expect(policyDenials[0]).toMatchObject({ username: 'mail@contoso.com', client: 'legacy', ip: '203.0.113.9', policy: 'Block legacy authentication' });
      expect(JSON.stringify(denied)).not.toContain(password);
      // The refused password was not marked used.
      expect((await admin('GET', '/v1/admin/users/mail@contoso.com/app-passwords')).body.app_passwords[0].last_used_at).toBe(usedAt);

      expect((await admin('PATCH', '/v1/admin/policies/Block legacy authentication', { grant: 'require_phishing_resistant' })).status).toBe(200);
      expect((await verify({})).body).toEqual({ result: 'denied', reason: 'phishing_resistant_required' });
      // require_mfa and allow_without_mfa refuse nothing here.
      for (const grant of ['require_mfa', 'allow_without_mfa']) {
        expect((await admin('PATCH', '/v1/admin/policies/Block legacy authentication', { grant })).status).toBe(200);
        expect((await verify({})).body, grant).toEqual({ result: 'approved', reason: 'approved' });
      }
    });

    it('WA-03 / policy block: a block policy for a user refuses /v1/verify with a valid TOTP code, /v1/challenges (totp, sms, voice, push) and the answer to a challenge started before it', async () => {
      const { admin, api, tenantId, totpUser } = await freshTenant('user-block');
      const secret = await totpUser('bob@contoso.com', { phone: '+14255550301' });
      await activateDevice(t, 'bob@contoso.com', 'user-block');
      const carol = await totpUser('carol@contoso.com');
      const verify = (username: string, code: string) => api('POST', '/v1/verify', { username, code, ip: '203.0.113.10' });
      const started = await api('POST', '/v1/challenges', { username: 'bob@contoso.com', method: 'totp' });
      expect(started.status).toBe(201);

      expect((await admin('POST', '/v1/admin/policies', { name: 'Block Bob', grant: 'block', conditions: { users: { include: ['bob@contoso.com'] } } })).status).toBe(201);
      const code = nextCode(secret);
      expect(await verify('bob@contoso.com', code)).toEqual({ status: 200, body: { result: 'denied', reason: 'policy_block' } });
      // Not counted as a failed guess …
      const bob = await t.services.db.selectFrom('users').select(['id', 'failed_count']).where('tenant_id', '=', tenantId).where('username', '=', 'bob@contoso.com').executeTakeFirstOrThrow();
      expect(Number(bob.failed_count)).toBe(0);
      // … audited like other denials, naming the policy …
      const audit = await t.services.db.selectFrom('audit_events').select('detail').where('tenant_id', '=', tenantId).where('action', '=', 'verification.denied').where('target', '=', bob.id).execute();
      expect(audit.map((a) => JSON.parse(a.detail ?? '{}'))).toEqual([expect.objectContaining({ reason: 'policy_block', policy: 'Block Bob', ip: '203.0.113.10' })]);
      expect(JSON.stringify(audit)).not.toContain(code);
      // … and a wrong code is answered as one: the policy is consulted for a valid code only.
      expect((await verify('bob@contoso.com', code === '000000' ? '111111' : '000000')).body).toEqual({ result: 'denied', reason: 'invalid_code' });
      // Carol is not in the policy's scope: she verifies as ever.
      expect((await verify('carol@contoso.com', totpAt(carol, t.clock.ms()))).body).toMatchObject({ result: 'approved', reason: 'approved' });

      // Starting a challenge is refused for every method, before anything is stored, sent or shown.
      const outboxBefore = (await t.admin('GET', '/v1/admin/outbox?limit=500')).body.messages.length;
      const challengesBefore = (await t.services.db.selectFrom('challenges').select('id').where('user_id', '=', bob.id).execute()).length;
      for (const method of ['totp', 'sms', 'voice', 'push']) {
        const refused = await api('POST', '/v1/challenges', { username: 'bob@contoso.com', method, context: { ip: '203.0.113.10' } });
        expect(refused, method).toEqual({ status: 403, body: { error: { code: 'FORBIDDEN', message: 'conditional access policy "Block Bob" blocks this sign-in (policy_block)' } } });
      }
      expect((await t.admin('GET', '/v1/admin/outbox?limit=500')).body.messages).toHaveLength(outboxBefore);
      expect(await t.services.db.selectFrom('challenges').select('id').where('user_id', '=', bob.id).execute()).toHaveLength(challengesBefore);
      // The challenge started before the policy: its answer, with a valid code, is refused too.
      const answered = await api('POST', `/v1/challenges/${started.body.id}/answer`, { code: nextCode(secret) });
      expect(answered.body).toMatchObject({ status: 'denied', reason: 'policy_block' });

      // The refused code was spent: lifting the policy does not make it usable (a replay), the next one is.
      expect((await admin('PATCH', '/v1/admin/policies/Block Bob', { enabled: false })).status).toBe(200);
      expect((await verify('bob@contoso.com', totpAt(secret, t.clock.ms()))).body).toEqual({ result: 'denied', reason: 'invalid_code' });
      expect((await verify('bob@contoso.com', nextCode(secret))).body).toMatchObject({ result: 'approved', reason: 'approved' });
      expect((await api('POST', '/v1/challenges', { username: 'bob@contoso.com', method: 'sms' })).status).toBe(201);
    });

    it('policy block: a push and a text started before a block policy cannot be approved after it (denied, policy_block, no failure counted)', async () => {
      const { admin, api, tenantId, totpUser } = await freshTenant('late-block');
      await totpUser('erin@contoso.com', { phone: '+14255550303' });
      const device = await activateDevice(t, 'erin@contoso.com', 'late-block');
      const push = await api('POST', '/v1/challenges', { username: 'erin@contoso.com', method: 'push' });
      const sms = await api('POST', '/v1/challenges', { username: 'erin@contoso.com', method: 'sms' });
      expect([push.status, sms.status]).toEqual([201, 201]);
      const text = (await t.admin('GET', '/v1/admin/outbox?limit=500')).body.messages.find((m: { challenge_id: string | null }) => m.challenge_id === sms.body.id) as { text: string };
      const smsCode = /\b(\d{6})\b/.exec(text.text)?.[1] ?? '';
      expect((await admin('POST', '/v1/admin/policies', { name: 'Block Erin', grant: 'block', conditions: { users: { include: ['erin@contoso.com'] } } })).status).toBe(201);
      expect((await device.answer(push.body.id, 'approve', String(push.body.number))).body).toMatchObject({ status: 'denied' });
      expect((await api('GET', `/v1/challenges/${push.body.id}`)).body).toMatchObject({ status: 'denied', reason: 'policy_block' });
      expect((await api('POST', `/v1/challenges/${sms.body.id}/answer`, { code: smsCode })).body).toMatchObject({ status: 'denied', reason: 'policy_block' });
      const erin = await t.services.db.selectFrom('users').select(['failed_count']).where('tenant_id', '=', tenantId).where('username', '=', 'erin@contoso.com').executeTakeFirstOrThrow();
      expect(Number(erin.failed_count)).toBe(0);
      // No remember token or cached success came out of them.
      expect(await t.services.db.selectFrom('remember_tokens').select('id').where('tenant_id', '=', tenantId).execute()).toEqual([]);
    });

    it('WA-03: require_phishing_resistant refuses a valid TOTP code at /v1/verify, and totp, sms, voice and push challenges', async () => {
      const { admin, api, totpUser } = await freshTenant('phishing-resistant');
      const secret = await totpUser('dave@contoso.com', { phone: '+14255550302' });
      await activateDevice(t, 'dave@contoso.com', 'phishing-resistant');
      expect((await admin('POST', '/v1/admin/policies', { name: 'Admins: keys only', grant: 'require_phishing_resistant' })).status).toBe(201);
      expect(await api('POST', '/v1/verify', { username: 'dave@contoso.com', code: nextCode(secret) })).toEqual({ status: 200, body: { result: 'denied', reason: 'phishing_resistant_required' } });
      for (const method of ['totp', 'sms', 'voice', 'push']) {
        const refused = await api('POST', '/v1/challenges', { username: 'dave@contoso.com', method });
        expect(refused.status, method).toBe(403);
        expect(refused.body.error.message, method).toBe(
          'conditional access policy "Admins: keys only" requires a phishing-resistant method (a WebAuthn security key or passkey): no code, text, call or push satisfies it (phishing_resistant_required)',
        );
      }
      // require_mfa: a second factor given is what it asks for.
      expect((await admin('PATCH', '/v1/admin/policies/Admins: keys only', { grant: 'require_mfa' })).status).toBe(200);
      expect((await api('POST', '/v1/verify', { username: 'dave@contoso.com', code: nextCode(secret) })).body).toMatchObject({ result: 'approved' });
      expect((await api('POST', '/v1/challenges', { username: 'dave@contoso.com', method: 'push' })).status).toBe(201);
    });

    it('a tenant with no enabled policies verifies normally, without reading the policies: the count alone decides', async () => {
      const { admin, api, tenantId, policyCount, totpUser } = await freshTenant('no-policies');
      const secret = await totpUser('erin@contoso.com');
      expect(await policyCount()).toBe(0);
      expect((await api('POST', '/v1/verify', { username: 'erin@contoso.com', code: nextCode(secret) })).body).toMatchObject({ result: 'approved', reason: 'approved' });
      // A disabled policy leaves the count at 0.
      expect((await admin('POST', '/v1/admin/policies', { name: 'Off', grant: 'block', enabled: false })).status).toBe(201);
      expect(await policyCount()).toBe(0);
      expect((await api('POST', '/v1/verify', { username: 'erin@contoso.com', code: nextCode(secret) })).body).toMatchObject({ result: 'approved' });
      // A policy row written behind the flows' back (the count still 0) is not read by a sign-in:
      // so a tenant without policies pays no policy query. The flows always keep the count.
      const now = t.clock.ms();
      await t.services.db
        .insertInto('policies')
        .values({ id: 'sneaked', tenant_id: tenantId, name: 'Sneaked', position: 2, enabled: 1, conditions: '{}', exclude_group: null, grant_control: 'block', created_at: now, updated_at: now })
        .execute();
      expect((await api('POST', '/v1/verify', { username: 'erin@contoso.com', code: nextCode(secret) })).body).toMatchObject({ result: 'approved' });
      expect((await api('POST', '/v1/preauth', { username: 'erin@contoso.com' })).body.reason).toBe('mfa_required');
    });

    it('policy_count follows create, disable, enable, change and delete; another server process on the store sees each change at once', async () => {
      const { admin, api, policyCount, totpUser } = await freshTenant('counted');
      const secret = await totpUser('fay@contoso.com');
      // A second server process over the same store (SQLite file or PostgreSQL database).
      const other = await createTestContext({ location: t.location, clock: t.clock });
      const otherApp = await buildServer(other.services);
      try {
        const key = (await admin('POST', '/v1/admin/applications', { name: 'second' })).body.api_key as string;
        const viaOther = async (url: string, body: unknown) => {
          const response = await otherApp.inject({ method: 'POST', url, headers: { authorization: `Bearer ${key}` }, payload: body as Record<string, unknown> });
          return { status: response.statusCode, body: response.json() };
        };
        const otherPreauth = async () => (await viaOther('/v1/preauth', { username: 'fay@contoso.com' })).body.reason as string;
        expect(await otherPreauth()).toBe('mfa_required');

        expect((await admin('POST', '/v1/admin/policies', { name: 'Stop', grant: 'block' })).status).toBe(201);
        expect(await policyCount()).toBe(1);
        expect(await otherPreauth()).toBe('policy_block');
        expect((await viaOther('/v1/verify', { username: 'fay@contoso.com', code: nextCode(secret) })).body).toEqual({ result: 'denied', reason: 'policy_block' });
        expect((await admin('POST', '/v1/admin/policies', { name: 'Also', grant: 'require_mfa', position: 1 })).status).toBe(201);
        expect(await policyCount()).toBe(2);
        expect(await otherPreauth()).toBe('mfa_required');

        expect((await admin('PATCH', '/v1/admin/policies/Also', { enabled: false })).status).toBe(200);
        expect(await policyCount()).toBe(1);
        expect(await otherPreauth()).toBe('policy_block');
        expect((await admin('PATCH', '/v1/admin/policies/Stop', { enabled: false })).status).toBe(200);
        expect(await policyCount()).toBe(0);
        expect(await otherPreauth()).toBe('mfa_required');
        expect((await viaOther('/v1/verify', { username: 'fay@contoso.com', code: nextCode(secret) })).body).toMatchObject({ result: 'approved' });
        // Changes that do not enable or disable leave it be.
        expect((await admin('PATCH', '/v1/admin/policies/Stop', { name: 'Stop all', position: 1 })).status).toBe(200);
        expect(await policyCount()).toBe(0);
        expect((await admin('PATCH', '/v1/admin/policies/Stop all', { enabled: true })).status).toBe(200);
        expect(await policyCount()).toBe(1);
        expect(await otherPreauth()).toBe('policy_block');
        // A policy created through the other process is seen by this one.
        const viaOtherAdmin = await otherApp.inject({ method: 'PATCH', url: '/v1/admin/policies/Stop all?tenant=counted', headers: { authorization: `Bearer ${t.adminKey}` }, payload: { grant: 'require_phishing_resistant' } });
        expect(viaOtherAdmin.statusCode).toBe(200);
        expect((await api('POST', '/v1/verify', { username: 'fay@contoso.com', code: nextCode(secret) })).body).toEqual({ result: 'denied', reason: 'phishing_resistant_required' });

        expect((await admin('DELETE', '/v1/admin/policies/Stop all')).status).toBe(204);
        expect(await policyCount()).toBe(0);
        expect((await admin('DELETE', '/v1/admin/policies/Also')).status).toBe(204);
        expect(await policyCount()).toBe(0);
        expect(await otherPreauth()).toBe('mfa_required');
        expect((await api('POST', '/v1/verify', { username: 'fay@contoso.com', code: nextCode(secret) })).body).toMatchObject({ result: 'approved' });
      } finally {
        await otherApp.close();
        await other.close();
      }
    });
  });
}

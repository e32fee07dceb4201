import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * Conditional access policies as an attack surface, on every store of this run:
 * - nothing crosses tenants: tenant B's administrator can neither see nor change tenant A's
 *   policies and named locations, nor point a policy of B at A's applications;
 * - a policy that blocks, or requires MFA, cannot be got round by what otherwise skips the
 *   second factor: a remember token, a trusted IP, a cached success (TIP-01: pre-auth checks do
 *   not substitute for a factor) — and a block not even by a one-time bypass (BYP-01), which
 *   stays unused;
 * - applications cannot administer policies, nor evaluate them.
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
  });
}

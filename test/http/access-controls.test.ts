import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * Access controls end to end, through the admin API and the Auth API, on every store of this run
 * (SQLite, and PostgreSQL when configured): one-time bypasses and the bypass report, trusted IPs,
 * remembered devices, MFA Server caching, unlock and unblock and the blocked-users report. Each
 * test works in a tenant of its own, so one test's settings never decide another's preauth.
 */
type Reply = { status: number; body: any };

for (const dialect of DIALECTS) {
  describe(`access controls (${dialect})`, () => {
    let t: TestApp;
    let n = 0;

    async function as(key: string, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown): Promise<Reply> {
      const response = await t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(body === undefined ? {} : { payload: body as Record<string, unknown> }) });
      return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
    }

    interface Tenant {
      name: string;
      id: string;
      /** Two applications of the tenant: a VPN and a mail server. */
      vpn: { id: string; key: string };
      mail: { id: string; key: string };
      admin(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<Reply>;
      preauth(body: Record<string, unknown>, app?: 'vpn' | 'mail'): Promise<Reply>;
      api(method: 'GET' | 'POST', path: string, body?: unknown, app?: 'vpn' | 'mail'): Promise<Reply>;
    }

    async function newTenant(settings: Record<string, unknown> = {}): Promise<Tenant> {
      n++;
      const name = `access${n}`;
      const created = await t.admin('POST', '/v1/admin/tenants', { name });
      expect(created.status).toBe(201);
      if (Object.keys(settings).length > 0) expect((await t.admin('PATCH', `/v1/admin/settings?tenant=${name}`, settings)).status).toBe(200);
      const vpn = await t.admin('POST', `/v1/admin/applications?tenant=${name}`, { name: 'vpn' });
      const mail = await t.admin('POST', `/v1/admin/applications?tenant=${name}`, { name: 'mail' });
      expect([vpn.status, mail.status]).toEqual([201, 201]);
      const apps = { vpn: { id: vpn.body.id as string, key: vpn.body.api_key as string }, mail: { id: mail.body.id as string, key: mail.body.api_key as string } };
      const withTenant = (path: string) => `${path}${path.includes('?') ? '&' : '?'}tenant=${name}`;
      return {
        name,
        id: created.body.id,
        ...apps,
        admin: (method, path, body) => t.admin(method, withTenant(path), body),
        preauth: (body, app = 'vpn') => as(apps[app].key, 'POST', '/v1/preauth', body),
        api: (method, path, body, app = 'vpn') => as(apps[app].key, method, path, body),
      };
    }

    async function userWithTotp(tenant: Tenant, username: string): Promise<{ id: string; secret: string }> {
      const created = await tenant.admin('POST', '/v1/admin/users', { username, mfa_state: 'enforced' });
      expect(created.status).toBe(201);
      const enrolled = await tenant.admin('POST', `/v1/admin/users/${username}/methods/totp`, {});
      expect(enrolled.status).toBe(201);
      const activated = await tenant.admin('POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate`, { code: totpAt(enrolled.body.secret, t.clock.ms()) });
      expect(activated.body.status).toBe('active');
      t.clock.advance(30_000); // the activation code's step is used; move to a fresh one
      return { id: created.body.id, secret: enrolled.body.secret };
    }

    /** An approved TOTP challenge through the given application: its answer (with the remember token, if any). */
    async function approveChallenge(tenant: Tenant, username: string, secret: string, app: 'vpn' | 'mail' = 'vpn', ip?: string): Promise<Reply> {
      const started = await tenant.api('POST', '/v1/challenges', { username, method: 'totp', ...(ip === undefined ? {} : { context: { ip } }) }, app);
      expect(started.status).toBe(201);
      const answered = await tenant.api('POST', `/v1/challenges/${started.body.id}/answer`, { code: totpAt(secret, t.clock.ms()) }, app);
      expect(answered.body.status).toBe('approved');
      t.clock.advance(30_000);
      return answered;
    }

    async function audit(tenant: Tenant, action: string): Promise<{ actor: string; target: string | null; detail: Record<string, unknown> }[]> {
      const rows = await t.services.db.selectFrom('audit_events').select(['actor', 'target', 'detail']).where('tenant_id', '=', tenant.id).where('action', '=', action).orderBy('seq').execute();
      return rows.map((r) => ({ actor: r.actor, target: r.target, detail: JSON.parse(r.detail) as Record<string, unknown> }));
    }

    const decided = (reply: Reply) => (reply.body.trace as { check: string; said: string; decided?: true }[]).find((step) => step.decided === true);
    const iso = (ms: number) => new Date(ms).toISOString();

    beforeAll(async () => {
      t = await createTestApp({ dialect });
    });
    afterAll(async () => {
      await t.close();
    });

    describe('one-time bypass', () => {
      it('is granted with a reason (201), used by the next preauth only (allow / bypass), and reported as used; all audited', async () => {
        const tenant = await newTenant();
        const alice = await userWithTotp(tenant, 'alice@contoso.com');
        const grantedAt = t.clock.ms();
        const granted = await tenant.admin('POST', '/v1/admin/users/alice@contoso.com/bypass', { reason: 'lost phone, ticket 4711' });
        expect(granted.status).toBe(201);
        expect(granted.body).toEqual({
          id: expect.any(String),
          username: 'alice@contoso.com',
          reason: 'lost phone, ticket 4711',
          granted_by: expect.stringMatching(/^admin-key:/),
          status: 'active',
          created_at: iso(grantedAt),
          expires_at: iso(grantedAt + 300_000),
          used_at: null,
          used_by: null,
        });

        const first = await tenant.preauth({ username: 'alice@contoso.com' });
        expect(first.body).toMatchObject({ result: 'allow', reason: 'bypass', methods: [] });
        expect(decided(first)).toEqual({ check: 'bypass', said: 'a one-time bypass, valid 300 s more, is used now', decided: true });
        const second = await tenant.preauth({ username: 'alice@contoso.com' });
        expect(second.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect(second.body.trace).toContainEqual({ check: 'bypass', said: 'none' });

        const report = await tenant.admin('GET', '/v1/admin/bypasses');
        expect(report.body.bypasses).toEqual([{ ...granted.body, status: 'used', used_at: iso(grantedAt), used_by: 'vpn' }]);
        expect(await audit(tenant, 'bypass.granted')).toEqual([
          { actor: granted.body.granted_by, target: alice.id, detail: { bypass: granted.body.id, username: 'alice@contoso.com', seconds: 300, reason: 'lost phone, ticket 4711' } },
        ]);
        expect(await audit(tenant, 'bypass.used')).toEqual([{ actor: `application:${tenant.vpn.id}`, target: alice.id, detail: { bypass: granted.body.id } }]);
        // Used is not expired: nothing more is recorded when its time passes.
        t.clock.advance(301_000);
        expect((await tenant.admin('GET', '/v1/admin/bypasses')).body.bypasses[0].status).toBe('used');
        expect(await audit(tenant, 'bypass.expired')).toEqual([]);
      });

      it('expires unused after its seconds: preauth challenges again, the report says expired, and bypass.expired is recorded once', async () => {
        const tenant = await newTenant();
        const bob = await userWithTotp(tenant, 'bob@contoso.com');
        const granted = await tenant.admin('POST', '/v1/admin/users/bob@contoso.com/bypass', { seconds: 60, reason: 'travelling' });
        expect(granted.body.expires_at).toBe(iso(t.clock.ms() + 60_000));
        t.clock.advance(59_000);
        expect(await tenant.admin('GET', '/v1/admin/bypasses?status=active')).toMatchObject({ status: 200, body: { bypasses: [{ id: granted.body.id }] } });
        t.clock.advance(1_000);
        const late = await tenant.preauth({ username: 'bob@contoso.com' });
        expect(late.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect((await tenant.admin('GET', '/v1/admin/bypasses')).body.bypasses).toEqual([{ ...granted.body, status: 'expired' }]);
        await tenant.preauth({ username: 'bob@contoso.com' });
        await tenant.admin('GET', '/v1/admin/bypasses');
        expect(await audit(tenant, 'bypass.expired')).toEqual([{ actor: 'system', target: bob.id, detail: { bypass: granted.body.id } }]);
        expect(await audit(tenant, 'bypass.used')).toEqual([]);

        // Noticed by the report alone, without a preauth of the user.
        await userWithTotp(tenant, 'carol@contoso.com');
        const carol = await tenant.admin('POST', '/v1/admin/users/carol@contoso.com/bypass', { seconds: 1, reason: 'test' });
        t.clock.advance(1_000);
        expect((await tenant.admin('GET', '/v1/admin/bypasses?username=carol@contoso.com')).body.bypasses).toEqual([{ ...carol.body, status: 'expired' }]);
        expect((await audit(tenant, 'bypass.expired')).map((r) => r.detail['bypass'])).toEqual([granted.body.id, carol.body.id]);
      });

      it('is revoked by DELETE (204): the next preauth challenges; revoking again or an unknown id is refused', async () => {
        const tenant = await newTenant();
        const dave = await userWithTotp(tenant, 'dave@contoso.com');
        const granted = await tenant.admin('POST', '/v1/admin/users/dave@contoso.com/bypass', { seconds: 1800, reason: 'vip' });
        expect(granted.body.expires_at).toBe(iso(t.clock.ms() + 1_800_000));
        expect(await tenant.admin('DELETE', `/v1/admin/bypasses/${granted.body.id}`)).toEqual({ status: 204, body: undefined });
        expect((await tenant.preauth({ username: 'dave@contoso.com' })).body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect((await tenant.admin('GET', '/v1/admin/bypasses')).body.bypasses).toEqual([{ ...granted.body, status: 'revoked' }]);
        expect(await tenant.admin('DELETE', `/v1/admin/bypasses/${granted.body.id}`)).toEqual({ status: 409, body: { error: { code: 'CONFLICT', message: 'the bypass is already revoked' } } });
        expect(await tenant.admin('DELETE', '/v1/admin/bypasses/00000000-0000-4000-8000-000000000000')).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
        expect(await audit(tenant, 'bypass.revoked')).toEqual([{ actor: granted.body.granted_by, target: dave.id, detail: { bypass: granted.body.id } }]);

        // A used bypass cannot be revoked either.
        const again = await tenant.admin('POST', '/v1/admin/users/dave@contoso.com/bypass', { reason: 'second try' });
        expect((await tenant.preauth({ username: 'dave@contoso.com' })).body.reason).toBe('bypass');
        expect((await tenant.admin('DELETE', `/v1/admin/bypasses/${again.body.id}`)).body.error.message).toBe('the bypass is already used');
      });

      it('a new grant replaces the one still open (recorded as revoked, replaced_by the new one); the new one is the one used', async () => {
        const tenant = await newTenant();
        const erin = await userWithTotp(tenant, 'erin@contoso.com');
        const first = await tenant.admin('POST', '/v1/admin/users/erin@contoso.com/bypass', { seconds: 600, reason: 'first' });
        t.clock.advance(1_000);
        const second = await tenant.admin('POST', '/v1/admin/users/erin@contoso.com/bypass', { seconds: 120, reason: 'second' });
        expect(await audit(tenant, 'bypass.revoked')).toEqual([{ actor: first.body.granted_by, target: erin.id, detail: { bypass: first.body.id, replaced_by: second.body.id } }]);
        const allowed = await tenant.preauth({ username: 'erin@contoso.com' });
        expect(decided(allowed)).toEqual({ check: 'bypass', said: 'a one-time bypass, valid 120 s more, is used now', decided: true });
        expect((await tenant.preauth({ username: 'erin@contoso.com' })).body.reason).toBe('mfa_required');
        const report = (await tenant.admin('GET', '/v1/admin/bypasses')).body.bypasses as { id: string; status: string; reason: string }[];
        expect(report.map((b) => [b.reason, b.status])).toEqual([
          ['second', 'used'],
          ['first', 'revoked'],
        ]);
      });

      it('the report filters by username and status, newest first; bad filters are refused naming the field', async () => {
        const tenant = await newTenant();
        await userWithTotp(tenant, 'fay@contoso.com');
        await userWithTotp(tenant, 'gus@contoso.com');
        const fay1 = await tenant.admin('POST', '/v1/admin/users/fay@contoso.com/bypass', { reason: 'one' });
        await tenant.preauth({ username: 'fay@contoso.com' });
        t.clock.advance(1_000);
        const fay2 = await tenant.admin('POST', '/v1/admin/users/fay@contoso.com/bypass', { seconds: 5, reason: 'two' });
        t.clock.advance(6_000);
        const gus = await tenant.admin('POST', '/v1/admin/users/GUS@contoso.com/bypass', { reason: 'three' });
        const ids = async (query: string) => ((await tenant.admin('GET', `/v1/admin/bypasses${query}`)).body.bypasses as { id: string }[]).map((b) => b.id);
        expect(await ids('')).toEqual([gus.body.id, fay2.body.id, fay1.body.id]);
        expect(await ids('?username=fay@contoso.com')).toEqual([fay2.body.id, fay1.body.id]);
        expect(await ids('?status=used')).toEqual([fay1.body.id]);
        expect(await ids('?status=expired')).toEqual([fay2.body.id]);
        expect(await ids('?status=active')).toEqual([gus.body.id]);
        expect(await ids('?status=revoked')).toEqual([]);
        expect(await ids('?username=gus@contoso.com&status=used')).toEqual([]);
        expect(await tenant.admin('GET', '/v1/admin/bypasses?status=open')).toEqual({ status: 400, body: { error: { code: 'INVALID_INPUT', message: 'status: must be active, used, expired or revoked' } } });
        expect((await tenant.admin('GET', '/v1/admin/bypasses?username=nobody@contoso.com')).status).toBe(404);
        expect((await tenant.admin('GET', '/v1/admin/bypasses?sort=name')).body.error.message).toBe('query.sort: is not a known field');
      });

      it('bad input is refused (400 naming the field) and nothing is stored', async () => {
        const tenant = await newTenant();
        await userWithTotp(tenant, 'hal@contoso.com');
        const grant = (body: unknown) => tenant.admin('POST', '/v1/admin/users/hal@contoso.com/bypass', body);
        for (const seconds of [0, 1801, -5, 1.5, 'abc', null]) {
          const refused = await grant({ seconds, reason: 'x' });
          expect(refused.status, String(seconds)).toBe(400);
          expect(refused.body.error.message, String(seconds)).toMatch(/^seconds: /);
        }
        expect((await grant({})).body.error).toEqual({ code: 'INVALID_INPUT', message: 'reason: is required' });
        expect((await grant({ reason: '' })).body.error.message).toMatch(/^reason: /);
        expect((await grant({ reason: '   ' })).body.error.message).toMatch(/^reason: is required/);
        expect((await grant({ reason: 'line\r\nforged: record' })).body.error.message).toMatch(/^reason: /);
        expect((await grant({ reason: 'x'.repeat(501) })).body.error.message).toMatch(/^reason: /);
        expect((await grant({ reason: 'ok', until: 'tomorrow' })).body.error.message).toBe('until: is not a known field');
        expect(await tenant.admin('POST', '/v1/admin/users/nobody@contoso.com/bypass', { reason: 'x' })).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
        const stored = await t.services.db.selectFrom('bypasses').select('id').where('tenant_id', '=', tenant.id).execute();
        expect(stored).toEqual([]);
        expect(await audit(tenant, 'bypass.granted')).toEqual([]);
        expect((await tenant.preauth({ username: 'hal@contoso.com' })).body.reason).toBe('mfa_required');
      });

      it('comes after status, state and lockout: a blocked user is denied and the bypass stays unused', async () => {
        const tenant = await newTenant();
        await userWithTotp(tenant, 'ivy@contoso.com');
        const granted = await tenant.admin('POST', '/v1/admin/users/ivy@contoso.com/bypass', { reason: 'x' });
        expect((await tenant.admin('POST', '/v1/admin/users/ivy@contoso.com/block')).status).toBe(200);
        expect((await tenant.preauth({ username: 'ivy@contoso.com' })).body).toMatchObject({ result: 'deny', reason: 'blocked' });
        expect((await tenant.admin('GET', '/v1/admin/bypasses')).body.bypasses[0]).toMatchObject({ id: granted.body.id, status: 'active' });
        expect((await tenant.admin('POST', '/v1/admin/users/ivy@contoso.com/unblock')).status).toBe(200);
        expect((await tenant.preauth({ username: 'ivy@contoso.com' })).body).toMatchObject({ result: 'allow', reason: 'bypass' });
      });
    });

    describe('trusted IPs', () => {
      it('IPv4 and IPv6 ranges: an ip inside answers allow / trusted_ip with the range in the trace; outside, no ip, or another family does not', async () => {
        const tenant = await newTenant({ trusted_ips: ['203.0.113.0/24', '2001:db8:abcd::/48'] });
        await userWithTotp(tenant, 'jo@contoso.com');
        const inV4 = await tenant.preauth({ username: 'jo@contoso.com', ip: '203.0.113.77' });
        expect(inV4.body).toMatchObject({ result: 'allow', reason: 'trusted_ip', methods: [] });
        expect(decided(inV4)).toEqual({ check: 'trusted_ip', said: '203.0.113.77 is in the trusted range 203.0.113.0/24', decided: true });
        const inV6 = await tenant.preauth({ username: 'jo@contoso.com', ip: '2001:db8:abcd:12::5' });
        expect(inV6.body).toMatchObject({ result: 'allow', reason: 'trusted_ip' });
        expect(decided(inV6)?.said).toBe('2001:db8:abcd:12::5 is in the trusted range 2001:db8:abcd::/48');

        for (const ip of ['203.0.114.1', '198.51.100.7', '2001:db8:abce::1', '::ffff:198.51.100.7']) {
          const outside = await tenant.preauth({ username: 'jo@contoso.com', ip });
          expect(outside.body, ip).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
          expect(outside.body.trace, ip).toContainEqual({ check: 'trusted_ip', said: `${ip} is in none of the 2 trusted ranges` });
        }
        const noIp = await tenant.preauth({ username: 'jo@contoso.com' });
        expect(noIp.body.reason).toBe('mfa_required');
        expect(noIp.body.trace).toContainEqual({ check: 'trusted_ip', said: 'no client IP given' });
        // An IPv4-mapped IPv6 address of a trusted IPv4 address is that address.
        expect((await tenant.preauth({ username: 'jo@contoso.com', ip: '::ffff:203.0.113.5' })).body.reason).toBe('trusted_ip');

        const audited = await audit(tenant, 'preauth.decided');
        expect(audited.find((r) => r.detail['reason'] === 'trusted_ip')?.detail).toMatchObject({ username: 'jo@contoso.com', result: 'allow', ip: '203.0.113.77' });
      });

      it('a trusted range does not lift a block, a lockout or a legacy client; a bypass comes first and is used', async () => {
        const tenant = await newTenant({ trusted_ips: ['10.0.0.0/8'], lockout_threshold: 1 });
        await userWithTotp(tenant, 'kim@contoso.com');
        expect((await tenant.preauth({ username: 'kim@contoso.com', ip: '10.1.2.3', client: 'legacy' })).body).toMatchObject({ result: 'deny', reason: 'app_password_required' });
        expect((await tenant.api('POST', '/v1/verify', { username: 'kim@contoso.com', code: '000000' })).body.result).toBe('denied');
        expect((await tenant.preauth({ username: 'kim@contoso.com', ip: '10.1.2.3' })).body).toMatchObject({ result: 'deny', reason: 'locked_out' });
        expect((await tenant.admin('POST', '/v1/admin/users/kim@contoso.com/unlock')).status).toBe(200);
        await tenant.admin('POST', '/v1/admin/users/kim@contoso.com/bypass', { reason: 'x' });
        expect((await tenant.preauth({ username: 'kim@contoso.com', ip: '10.1.2.3' })).body.reason).toBe('bypass');
        expect((await tenant.preauth({ username: 'kim@contoso.com', ip: '10.1.2.3' })).body.reason).toBe('trusted_ip');
        await tenant.admin('POST', '/v1/admin/users/kim@contoso.com/block');
        expect((await tenant.preauth({ username: 'kim@contoso.com', ip: '10.1.2.3' })).body).toMatchObject({ result: 'deny', reason: 'blocked' });
      });

      it('at most 50 ranges: a 51st is refused naming trusted_ips and the old list stays', async () => {
        const tenant = await newTenant({ trusted_ips: ['203.0.113.0/24'] });
        const fifty = Array.from({ length: 50 }, (_, i) => `10.${i}.0.0/16`);
        expect((await tenant.admin('PATCH', '/v1/admin/settings', { trusted_ips: [...fifty, '192.0.2.0/24'] })).body.error).toEqual({ code: 'INVALID_INPUT', message: "trusted_ips: at most 50 ranges (Azure's limit); got 51" });
        expect((await tenant.admin('PATCH', '/v1/admin/settings', { trusted_ips: ['10.0.0.0/33'] })).body.error.message).toMatch(/^trusted_ips/);
        expect((await tenant.admin('GET', '/v1/admin/settings')).body.trusted_ips).toEqual(['203.0.113.0/24']);
        expect((await tenant.admin('PATCH', '/v1/admin/settings', { trusted_ips: fifty })).status).toBe(200);
      });
    });

    describe('remember MFA', () => {
      it('an approved challenge hands over a remember token once; preauth with it answers allow / remembered_device for that user and application only', async () => {
        const tenant = await newTenant({ remember_mfa_days: 14 });
        const lee = await userWithTotp(tenant, 'lee@contoso.com');
        const max = await userWithTotp(tenant, 'max@contoso.com');
        const started = await tenant.api('POST', '/v1/challenges', { username: 'lee@contoso.com', method: 'totp' });
        const answered = await tenant.api('POST', `/v1/challenges/${started.body.id}/answer`, { code: totpAt(lee.secret, t.clock.ms()) });
        expect(answered.body).toMatchObject({ id: started.body.id, status: 'approved', remember_token: expect.stringMatching(/^rmt_[A-Za-z0-9_-]{43}$/) });
        const token: string = answered.body.remember_token;
        // Handed over once: reading the approved challenge afterwards gives no new token.
        const read = await tenant.api('GET', `/v1/challenges/${started.body.id}`);
        expect(read.body.status).toBe('approved');
        expect(read.body.remember_token).toBeUndefined();

        const remembered = await tenant.preauth({ username: 'lee@contoso.com', remember_token: token });
        expect(remembered.body).toMatchObject({ result: 'allow', reason: 'remembered_device', methods: [] });
        expect(decided(remembered)).toEqual({ check: 'remembered_device', said: 'a valid remember token for this user and application', decided: true });
        const notValid = { check: 'remembered_device', said: 'the remember token is not valid (expired, revoked, or for another user or application)' };
        const otherApp = await tenant.preauth({ username: 'lee@contoso.com', remember_token: token }, 'mail');
        expect(otherApp.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect(otherApp.body.trace).toContainEqual(notValid);
        const otherUser = await tenant.preauth({ username: 'max@contoso.com', remember_token: token });
        expect(otherUser.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect(otherUser.body.trace).toContainEqual(notValid);
        expect((await tenant.preauth({ username: 'lee@contoso.com', remember_token: `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}` })).body.trace).toContainEqual(notValid);
        expect((await tenant.preauth({ username: 'lee@contoso.com' })).body.trace).toContainEqual({ check: 'remembered_device', said: 'no remember token given' });

        // A one-shot /v1/verify approval hands one over too, bound to its application.
        const verified = await tenant.api('POST', '/v1/verify', { username: 'max@contoso.com', code: totpAt(max.secret, t.clock.ms()) }, 'mail');
        expect(verified.body).toMatchObject({ result: 'approved', remember_token: expect.stringMatching(/^rmt_/) });
        expect((await tenant.preauth({ username: 'max@contoso.com', remember_token: verified.body.remember_token }, 'mail')).body.reason).toBe('remembered_device');
        expect((await tenant.preauth({ username: 'max@contoso.com', remember_token: verified.body.remember_token }, 'vpn')).body.reason).toBe('mfa_required');
      });

      it('lasts remember_mfa_days: allowed until the last millisecond, challenged after', async () => {
        const tenant = await newTenant({ remember_mfa_days: 2 });
        const nia = await userWithTotp(tenant, 'nia@contoso.com');
        const approvedAt = t.clock.ms();
        const { remember_token: token } = (await approveChallenge(tenant, 'nia@contoso.com', nia.secret)).body;
        t.clock.set(approvedAt + 2 * 86_400_000 - 1);
        expect((await tenant.preauth({ username: 'nia@contoso.com', remember_token: token })).body.reason).toBe('remembered_device');
        t.clock.set(approvedAt + 2 * 86_400_000);
        const expired = await tenant.preauth({ username: 'nia@contoso.com', remember_token: token });
        expect(expired.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
      });

      it('revoking all of a user’s remembered devices takes effect at the next preauth; other users keep theirs; audited', async () => {
        const tenant = await newTenant({ remember_mfa_days: 30 });
        const oli = await userWithTotp(tenant, 'oli@contoso.com');
        const pam = await userWithTotp(tenant, 'pam@contoso.com');
        const vpnToken = (await approveChallenge(tenant, 'oli@contoso.com', oli.secret, 'vpn')).body.remember_token as string;
        const mailToken = (await approveChallenge(tenant, 'oli@contoso.com', oli.secret, 'mail')).body.remember_token as string;
        const pamToken = (await approveChallenge(tenant, 'pam@contoso.com', pam.secret)).body.remember_token as string;
        expect((await tenant.preauth({ username: 'oli@contoso.com', remember_token: vpnToken })).body.reason).toBe('remembered_device');

        expect(await tenant.admin('DELETE', '/v1/admin/users/oli@contoso.com/remembered-devices')).toEqual({ status: 200, body: { revoked: 2 } });
        expect((await tenant.preauth({ username: 'oli@contoso.com', remember_token: vpnToken })).body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect((await tenant.preauth({ username: 'oli@contoso.com', remember_token: mailToken }, 'mail')).body.reason).toBe('mfa_required');
        expect((await tenant.preauth({ username: 'pam@contoso.com', remember_token: pamToken })).body.reason).toBe('remembered_device');
        expect(await tenant.admin('DELETE', '/v1/admin/users/oli@contoso.com/remembered-devices')).toEqual({ status: 200, body: { revoked: 0 } });
        expect((await audit(tenant, 'remembered_devices.revoked')).map((r) => [r.target, r.detail])).toEqual([
          [oli.id, { count: 2 }],
          [oli.id, { count: 0 }],
        ]);
        expect((await tenant.admin('DELETE', '/v1/admin/users/nobody@contoso.com/remembered-devices')).status).toBe(404);

        // A new approval remembers again.
        const fresh = (await approveChallenge(tenant, 'oli@contoso.com', oli.secret)).body.remember_token as string;
        expect((await tenant.preauth({ username: 'oli@contoso.com', remember_token: fresh })).body.reason).toBe('remembered_device');
      });

      it('off (remember_mfa_days 0, the default): no token is handed over and a presented one is ignored', async () => {
        const tenant = await newTenant();
        const quin = await userWithTotp(tenant, 'quin@contoso.com');
        const answered = await approveChallenge(tenant, 'quin@contoso.com', quin.secret);
        expect(answered.body.remember_token).toBeUndefined();
        const preauth = await tenant.preauth({ username: 'quin@contoso.com', remember_token: 'rmt_whatever' });
        expect(preauth.body.reason).toBe('mfa_required');
        expect(preauth.body.trace).toContainEqual({ check: 'remembered_device', said: 'remembering MFA is off for this tenant' });
      });
    });

    describe('caching (MFA Server)', () => {
      it('a success for the same user and application within cache_seconds answers allow / cached; another application or later is challenged', async () => {
        const tenant = await newTenant({ cache_seconds: 60 });
        const rae = await userWithTotp(tenant, 'rae@contoso.com');
        const before = await tenant.preauth({ username: 'rae@contoso.com' });
        expect(before.body.trace).toContainEqual({ check: 'cache', said: 'no success within 60 s' });
        await approveChallenge(tenant, 'rae@contoso.com', rae.secret, 'vpn', '198.51.100.5'); // moves the clock 30 s
        const cached = await tenant.preauth({ username: 'rae@contoso.com', ip: '192.0.2.1' });
        expect(cached.body).toMatchObject({ result: 'allow', reason: 'cached', methods: [] });
        expect(decided(cached)).toEqual({ check: 'cache', said: 'a second factor succeeded 30 s ago (caching: 60 s)', decided: true });
        expect((await tenant.preauth({ username: 'rae@contoso.com' }, 'mail')).body.reason).toBe('mfa_required');
        t.clock.advance(30_000);
        expect((await tenant.preauth({ username: 'rae@contoso.com' })).body.reason).toBe('cached');
        t.clock.advance(1);
        expect((await tenant.preauth({ username: 'rae@contoso.com' })).body.reason).toBe('mfa_required');

        // A /v1/verify success counts too.
        expect((await tenant.api('POST', '/v1/verify', { username: 'rae@contoso.com', code: totpAt(rae.secret, t.clock.ms()) }, 'mail')).body.result).toBe('approved');
        expect((await tenant.preauth({ username: 'rae@contoso.com' }, 'mail')).body.reason).toBe('cached');
        expect((await tenant.preauth({ username: 'rae@contoso.com' }, 'vpn')).body.reason).toBe('mfa_required');
      });

      it('cache_by_ip: only a sign-in from the same client IP reuses the success; without an ip nothing matches', async () => {
        const tenant = await newTenant({ cache_seconds: 300, cache_by_ip: true });
        const sam = await userWithTotp(tenant, 'sam@contoso.com');
        await approveChallenge(tenant, 'sam@contoso.com', sam.secret, 'vpn', '2001:db8::7');
        expect((await tenant.preauth({ username: 'sam@contoso.com', ip: '2001:db8::7' })).body).toMatchObject({ result: 'allow', reason: 'cached' });
        expect((await tenant.preauth({ username: 'sam@contoso.com', ip: '2001:db8::8' })).body.reason).toBe('mfa_required');
        expect((await tenant.preauth({ username: 'sam@contoso.com' })).body.reason).toBe('mfa_required');
        expect((await tenant.api('POST', '/v1/verify', { username: 'sam@contoso.com', code: totpAt(sam.secret, t.clock.ms()), ip: '203.0.113.8' })).body.result).toBe('approved');
        expect((await tenant.preauth({ username: 'sam@contoso.com', ip: '203.0.113.8' })).body.reason).toBe('cached');
        expect((await tenant.preauth({ username: 'sam@contoso.com', ip: '2001:db8::7' })).body.reason).toBe('cached');
        // Turning caching off stops it at once.
        expect((await tenant.admin('PATCH', '/v1/admin/settings', { cache_seconds: 0 })).status).toBe(200);
        const off = await tenant.preauth({ username: 'sam@contoso.com', ip: '203.0.113.8' });
        expect(off.body.reason).toBe('mfa_required');
        expect(off.body.trace).toContainEqual({ check: 'cache', said: 'caching is off' });
      });

      it('a denied or failed second factor is not cached', async () => {
        const tenant = await newTenant({ cache_seconds: 600 });
        await userWithTotp(tenant, 'tia@contoso.com');
        expect((await tenant.api('POST', '/v1/verify', { username: 'tia@contoso.com', code: '000000' })).body.result).toBe('denied');
        expect((await tenant.preauth({ username: 'tia@contoso.com' })).body.reason).toBe('mfa_required');
      });
    });

    describe('unlock, unblock and the blocked-users report', () => {
      it('a locked-out user is listed (locked_out, since, until), unlocked by an admin (audited), and a second unlock is 409', async () => {
        const tenant = await newTenant({ lockout_threshold: 3, lockout_minutes: 15 });
        const uma = await userWithTotp(tenant, 'uma@contoso.com');
        const wrong = String((Number(totpAt(uma.secret, t.clock.ms())) + 1) % 1_000_000).padStart(6, '0');
        for (let i = 0; i < 3; i++) expect((await tenant.api('POST', '/v1/verify', { username: 'uma@contoso.com', code: wrong })).body.result).toBe('denied');
        const lockedAt = t.clock.ms();
        expect((await tenant.preauth({ username: 'uma@contoso.com' })).body).toMatchObject({ result: 'deny', reason: 'locked_out' });
        expect(await tenant.admin('GET', '/v1/admin/blocked-users')).toEqual({
          status: 200,
          body: { users: [{ user_id: uma.id, username: 'uma@contoso.com', kind: 'locked_out', reason: 'failed_attempts', since: iso(lockedAt), until: iso(lockedAt + 15 * 60_000) }] },
        });

        const unlocked = await tenant.admin('POST', '/v1/admin/users/uma@contoso.com/unlock');
        expect(unlocked.status).toBe(200);
        expect(unlocked.body).toMatchObject({ username: 'uma@contoso.com', status: 'active', locked_until: null, failed_count: 0 });
        expect((await tenant.preauth({ username: 'uma@contoso.com' })).body.reason).toBe('mfa_required');
        expect((await tenant.admin('GET', '/v1/admin/blocked-users')).body.users).toEqual([]);
        expect(await tenant.admin('POST', '/v1/admin/users/uma@contoso.com/unlock')).toEqual({
          status: 409,
          body: { error: { code: 'CONFLICT', message: 'user uma@contoso.com is not locked out and has no failed attempts counted: there is nothing to unlock' } },
        });
        expect(await audit(tenant, 'user.unlocked')).toEqual([
          { actor: expect.stringMatching(/^admin-key:/), target: uma.id, detail: { username: 'uma@contoso.com', locked_until: iso(lockedAt + 15 * 60_000), failed_count: 0 } },
        ]);
        // A correct code works again.
        expect((await tenant.api('POST', '/v1/verify', { username: 'uma@contoso.com', code: totpAt(uma.secret, t.clock.ms()) })).body.result).toBe('approved');

        // Failures counted without a lockout are something to clear; a lockout that ran out alone is not.
        t.clock.advance(30_000);
        await tenant.api('POST', '/v1/verify', { username: 'uma@contoso.com', code: '000000' });
        expect((await tenant.admin('POST', '/v1/admin/users/uma@contoso.com/unlock')).body).toMatchObject({ failed_count: 0 });
        for (let i = 0; i < 3; i++) await tenant.api('POST', '/v1/verify', { username: 'uma@contoso.com', code: '000000' });
        expect((await tenant.preauth({ username: 'uma@contoso.com' })).body.reason).toBe('locked_out');
        t.clock.advance(15 * 60_000);
        expect((await tenant.admin('GET', '/v1/admin/blocked-users')).body.users).toEqual([]);
        expect((await tenant.admin('POST', '/v1/admin/users/uma@contoso.com/unlock')).status).toBe(409);
      });

      it('an administrator’s block and a fraud block are listed with reason and until; unblock lifts each (audited); a second unblock is 409', async () => {
        const tenant = await newTenant();
        const vic = await userWithTotp(tenant, 'vic@contoso.com');
        const wes = await userWithTotp(tenant, 'wes@contoso.com');
        const blockedAt = t.clock.ms();
        expect((await tenant.admin('POST', '/v1/admin/users/vic@contoso.com/block')).status).toBe(200);
        // A fraud block as flows/fraud.ts makes it (the fraud report itself is tested in PUSH-04).
        const fraudUntil = blockedAt + 90 * 86_400_000;
        await t.services.db.updateTable('users').set({ status: 'blocked', blocked_reason: 'fraud', blocked_until: fraudUntil }).where('id', '=', wes.id).execute();
        const report = await tenant.admin('GET', '/v1/admin/blocked-users');
        expect(report.body.users).toEqual([
          { user_id: vic.id, username: 'vic@contoso.com', kind: 'blocked', reason: 'admin', since: iso(blockedAt), until: null },
          { user_id: wes.id, username: 'wes@contoso.com', kind: 'blocked', reason: 'fraud', since: null, until: iso(fraudUntil) },
        ]);
        expect((await tenant.preauth({ username: 'wes@contoso.com' })).body.reason).toBe('fraud_block');

        for (const [username, id, reason, until] of [
          ['vic@contoso.com', vic.id, 'admin', null],
          ['wes@contoso.com', wes.id, 'fraud', iso(fraudUntil)],
        ] as const) {
          const unblocked = await tenant.admin('POST', `/v1/admin/users/${username}/unblock`);
          expect(unblocked.status).toBe(200);
          expect(unblocked.body).toMatchObject({ username, status: 'active', blocked_reason: null, blocked_until: null });
          expect((await tenant.preauth({ username })).body.reason).toBe('mfa_required');
          expect(await tenant.admin('POST', `/v1/admin/users/${username}/unblock`)).toEqual({ status: 409, body: { error: { code: 'CONFLICT', message: `user ${username} is not blocked: there is nothing to unblock` } } });
          expect((await audit(tenant, 'user.unblocked')).filter((r) => r.target === id)).toEqual([{ actor: expect.stringMatching(/^admin-key:/), target: id, detail: { username, reason, until } }]);
        }
        expect((await tenant.admin('GET', '/v1/admin/blocked-users')).body.users).toEqual([]);

        // A block whose time has passed is neither listed nor something to unblock.
        await t.services.db.updateTable('users').set({ status: 'blocked', blocked_reason: 'fraud', blocked_until: t.clock.ms() - 1 }).where('id', '=', wes.id).execute();
        expect((await tenant.admin('GET', '/v1/admin/blocked-users')).body.users).toEqual([]);
        expect((await tenant.admin('POST', '/v1/admin/users/wes@contoso.com/unblock')).status).toBe(409);
      });

      it('a user both blocked and locked out appears once of each kind; unknown users are 404', async () => {
        const tenant = await newTenant({ lockout_threshold: 1 });
        await userWithTotp(tenant, 'xia@contoso.com');
        await tenant.api('POST', '/v1/verify', { username: 'xia@contoso.com', code: '000000' });
        await tenant.admin('POST', '/v1/admin/users/xia@contoso.com/block');
        expect(((await tenant.admin('GET', '/v1/admin/blocked-users')).body.users as { kind: string }[]).map((u) => u.kind)).toEqual(['blocked', 'locked_out']);
        for (const action of ['unlock', 'unblock']) expect((await tenant.admin('POST', `/v1/admin/users/nobody@contoso.com/${action}`)).status).toBe(404);
        expect((await tenant.admin('GET', '/v1/admin/blocked-users?status=x')).status).toBe(400);
      });
    });
  });
}

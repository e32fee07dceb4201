import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_POLICIES } from '../../src/core/policies.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * Conditional access policies end to end, through the admin API and the Auth API, on every
 * store of this run (SQLite, and PostgreSQL when configured): CRUD and order, named locations,
 * preauth obeying each grant with its trace, the exclusion group, IPv6, bad input, and the
 * evaluation that changes nothing. Each test works in a tenant of its own.
 */
type Reply = { status: number; body: any };
type Step = { check: string; said: string; decided?: true };

for (const dialect of DIALECTS) {
  describe(`conditional access policies (${dialect})`, () => {
    let t: TestApp;
    let n = 0;

    async function as(key: string, method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, body?: unknown): Promise<Reply> {
      const response = await t.app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, ...(body === undefined ? {} : { payload: body as Record<string, unknown> }) });
      return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
    }

    interface Tenant {
      name: string;
      id: string;
      vpn: { id: string; key: string };
      mail: { id: string; key: string };
      admin(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<Reply>;
      preauth(body: Record<string, unknown>, app?: 'vpn' | 'mail'): Promise<Reply>;
      /** A policy, asserted created. */
      policy(body: Record<string, unknown>): Promise<any>;
    }

    async function newTenant(settings: Record<string, unknown> = {}): Promise<Tenant> {
      n++;
      const name = `policies${n}`;
      const created = await t.admin('POST', '/v1/admin/tenants', { name });
      expect(created.status).toBe(201);
      if (Object.keys(settings).length > 0) expect((await t.admin('PATCH', `/v1/admin/settings?tenant=${name}`, settings)).status).toBe(200);
      const vpn = await t.admin('POST', `/v1/admin/applications?tenant=${name}`, { name: 'vpn' });
      const mail = await t.admin('POST', `/v1/admin/applications?tenant=${name}`, { name: 'mail' });
      const apps = { vpn: { id: vpn.body.id as string, key: vpn.body.api_key as string }, mail: { id: mail.body.id as string, key: mail.body.api_key as string } };
      const withTenant = (path: string) => `${path}${path.includes('?') ? '&' : '?'}tenant=${name}`;
      const admin: Tenant['admin'] = (method, path, body) => t.admin(method, withTenant(path), body);
      return {
        name,
        id: created.body.id,
        ...apps,
        admin,
        preauth: (body, app = 'vpn') => as(apps[app].key, 'POST', '/v1/preauth', body),
        policy: async (body) => {
          const reply = await admin('POST', '/v1/admin/policies', body);
          expect(reply.status, JSON.stringify(reply.body)).toBe(201);
          return reply.body;
        },
      };
    }

    async function user(tenant: Tenant, username: string, groups: string[] = [], withTotp = true): Promise<{ id: string }> {
      const created = await tenant.admin('POST', '/v1/admin/users', { username, mfa_state: 'enforced', groups });
      expect(created.status).toBe(201);
      if (withTotp) {
        const enrolled = await tenant.admin('POST', `/v1/admin/users/${username}/methods/totp`, {});
        const activated = await tenant.admin('POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate`, { code: totpAt(enrolled.body.secret, t.clock.ms()) });
        expect(activated.body.status).toBe('active');
        t.clock.advance(30_000);
      }
      return { id: created.body.id };
    }

    async function audit(tenant: Tenant, action: string): Promise<{ actor: string; target: string | null; detail: Record<string, unknown> }[]> {
      const rows = await t.services.db.selectFrom('audit_events').select(['actor', 'target', 'detail']).where('tenant_id', '=', tenant.id).where('action', '=', action).orderBy('seq').execute();
      return rows.map((r) => ({ actor: r.actor, target: r.target, detail: JSON.parse(r.detail) as Record<string, unknown> }));
    }

    const decided = (reply: Reply): Step | undefined => (reply.body.trace as Step[]).find((s) => s.decided === true);
    const policySteps = (reply: Reply): string[] => (reply.body.trace as Step[]).filter((s) => s.check === 'policy').map((s) => s.said);
    const order = async (tenant: Tenant) => ((await tenant.admin('GET', '/v1/admin/policies')).body.policies as { name: string; position: number }[]).map((p) => `${p.position}:${p.name}`);

    beforeAll(async () => {
      t = await createTestApp({ dialect });
    });
    afterAll(async () => {
      await t.close();
    });

    describe('administration', () => {
      it('creates, lists in order, reads by id or name, changes, moves and removes policies; every change is audited', async () => {
        const tenant = await newTenant();
        await user(tenant, 'amy@contoso.com', ['sales', 'break-glass'], false);
        const a = await tenant.policy({ name: 'MFA for everyone', grant: 'require_mfa' });
        expect(a).toEqual({ id: a.id, name: 'MFA for everyone', position: 1, enabled: true, grant: 'require_mfa', exclude_group: null, conditions: {}, created_at: '2026-01-15T12:00:00.000Z', updated_at: '2026-01-15T12:00:00.000Z' });
        const b = await tenant.policy({
          name: 'Block legacy',
          grant: 'block',
          exclude_group: 'break-glass',
          conditions: { client_types: ['legacy'], applications: { include: ['mail'] }, users: { exclude: ['AMY@contoso.com'] }, groups: { include: ['sales'] }, locations: { exclude: ['trusted', '10.1.2.3/8'] } },
          position: 1,
        });
        expect(b).toMatchObject({
          position: 1,
          exclude_group: 'break-glass',
          // Applications are shown by name (stored by id); names normalized, ranges canonical.
          conditions: { client_types: ['legacy'], applications: { include: ['mail'] }, users: { exclude: ['amy@contoso.com'] }, groups: { include: ['sales'] }, locations: { exclude: ['trusted', '10.0.0.0/8'] } },
        });
        const stored = await t.services.db.selectFrom('policies').select('conditions').where('id', '=', b.id).executeTakeFirstOrThrow();
        expect(JSON.parse(stored.conditions).applications).toEqual({ include: [tenant.mail.id] });
        const c = await tenant.policy({ name: 'Kiosk', grant: 'allow_without_mfa', enabled: false });
        expect(await order(tenant)).toEqual(['1:Block legacy', '2:MFA for everyone', '3:Kiosk']);

        expect((await tenant.admin('GET', `/v1/admin/policies/${b.id}`)).body).toEqual(b);
        expect((await tenant.admin('GET', '/v1/admin/policies/Kiosk')).body.id).toBe(c.id);
        expect((await tenant.admin('GET', '/v1/admin/policies/nope')).body.error).toEqual({ code: 'NOT_FOUND', message: expect.stringContaining('policy nope') });

        t.clock.advance(1000);
        const changed = await tenant.admin('PATCH', '/v1/admin/policies/Kiosk', { name: 'Kiosk app', enabled: true, position: 1, conditions: { applications: { include: ['vpn'] } } });
        expect(changed.body).toMatchObject({ name: 'Kiosk app', enabled: true, position: 1, conditions: { applications: { include: ['vpn'] } }, updated_at: '2026-01-15T12:00:01.000Z' });
        expect(await order(tenant)).toEqual(['1:Kiosk app', '2:Block legacy', '3:MFA for everyone']);
        expect((await tenant.admin('PATCH', `/v1/admin/policies/${b.id}`, { exclude_group: null })).body.exclude_group).toBeNull();

        const reordered = await tenant.admin('PUT', '/v1/admin/policies/order', { ids: [a.id, 'Block legacy', c.id] });
        expect(reordered.status).toBe(200);
        expect(reordered.body.policies.map((p: any) => p.name)).toEqual(['MFA for everyone', 'Block legacy', 'Kiosk app']);
        expect((await tenant.admin('PUT', '/v1/admin/policies/order', { ids: [a.id, c.id] })).body.error).toEqual({ code: 'INVALID_INPUT', message: 'ids: must list all 3 policies of the tenant; missing: Block legacy' });
        expect((await tenant.admin('PUT', '/v1/admin/policies/order', { ids: [a.id, a.id, c.id] })).body.error.message).toBe('ids: names a policy twice');
        expect((await tenant.admin('PUT', '/v1/admin/policies/order', { ids: [a.id, 'ghost', c.id] })).body.error.message).toMatch(/^ids\[1\]: there is no policy "ghost"/);

        expect((await tenant.admin('DELETE', `/v1/admin/policies/${a.id}`)).status).toBe(204);
        expect(await order(tenant)).toEqual(['1:Block legacy', '2:Kiosk app']);
        expect((await tenant.admin('DELETE', `/v1/admin/policies/${a.id}`)).status).toBe(404);

        expect((await audit(tenant, 'policy.created')).map((r) => r.detail['name'])).toEqual(['MFA for everyone', 'Block legacy', 'Kiosk']);
        expect((await audit(tenant, 'policy.created'))[1]).toMatchObject({ actor: expect.stringMatching(/^admin-key:/), target: b.id, detail: { grant: 'block', position: 1, exclude_group: 'break-glass' } });
        expect((await audit(tenant, 'policy.updated'))[0]?.detail).toMatchObject({ name: 'Kiosk app', old_name: 'Kiosk', enabled: true, position: 1, changed: 'conditions,enabled,name,position' });
        expect((await audit(tenant, 'policy.reordered'))[0]?.detail).toMatchObject({ order: 'MFA for everyone,Block legacy,Kiosk app' });
        expect(await audit(tenant, 'policy.deleted')).toMatchObject([{ actor: expect.stringMatching(/^admin-key:/), target: a.id, detail: { name: 'MFA for everyone', grant: 'require_mfa', position: 1 } }]);
      });

      it('bad input gets a 400 naming the field and stores nothing: unknown users, groups, applications and locations, bad grants, ranges and fields', async () => {
        const tenant = await newTenant();
        await user(tenant, 'amy@contoso.com', ['sales'], false);
        const refused = async (body: Record<string, unknown>, field: string) => {
          const reply = await tenant.admin('POST', '/v1/admin/policies', { name: 'P', grant: 'block', ...body });
          expect(reply.status, JSON.stringify(body)).toBe(400);
          expect(reply.body.error.code).toBe('INVALID_INPUT');
          expect(reply.body.error.message.startsWith(`${field}: `), reply.body.error.message).toBe(true);
        };
        await refused({ conditions: { groups: { include: ['sales', 'no-such-group'] } } }, 'conditions.groups.include[1]');
        await refused({ conditions: { applications: { exclude: ['crm'] } } }, 'conditions.applications.exclude[0]');
        await refused({ conditions: { locations: { include: ['hq'] } } }, 'conditions.locations.include[0]');
        await refused({ conditions: { locations: { include: ['10.0.0.0/33'] } } }, 'conditions.locations.include[0]');
        await refused({ conditions: { users: { include: ['bob@contoso.com'] } } }, 'conditions.users.include[0]');
        await refused({ conditions: { users: { include: [] } } }, 'conditions.users.include');
        await refused({ conditions: { client_types: ['fax'] } }, 'conditions.client_types.0');
        await refused({ conditions: { devices: {} } }, 'conditions.devices');
        await refused({ exclude_group: 'nobody-here' }, 'exclude_group');
        await refused({ grant: 'deny' }, 'grant');
        await refused({ name: 'a\nb' }, 'name');
        await refused({ position: 0 }, 'position');
        await refused({ position: 2 }, 'position');
        await refused({ colour: 'red' }, 'colour');
        expect((await tenant.admin('GET', '/v1/admin/policies')).body.policies).toEqual([]);
        expect(await audit(tenant, 'policy.created')).toEqual([]);

        const p = await tenant.policy({ name: 'P', grant: 'require_mfa', conditions: { groups: { include: ['sales'] } } });
        expect((await tenant.admin('POST', '/v1/admin/policies', { name: 'P', grant: 'block' })).body.error).toEqual({ code: 'CONFLICT', message: 'a policy named "P" already exists in this tenant' });
        const patch = await tenant.admin('PATCH', '/v1/admin/policies/P', { grant: 'block', conditions: { groups: { include: ['ghosts'] } } });
        expect(patch.body.error.message).toMatch(/^conditions\.groups\.include\[0\]: no user is in group "ghosts"/);
        expect((await tenant.admin('PATCH', '/v1/admin/policies/P', {})).body.error.message).toMatch(/^body: /);
        expect((await tenant.admin('PATCH', '/v1/admin/policies/P', { position: 2 })).body.error.message).toMatch(/^position: must be a whole number from 1 to 1/);
        // The refused changes left the policy as it was.
        expect((await tenant.admin('GET', '/v1/admin/policies/P')).body).toEqual(p);
        expect(await audit(tenant, 'policy.updated')).toEqual([]);
      });

      it('30 concurrent creates (some at position 1) and moves keep the positions 1…n, each once', async () => {
        const tenant = await newTenant();
        const created = await Promise.all(Array.from({ length: 30 }, (_, i) => tenant.admin('POST', '/v1/admin/policies', { name: `c${i}`, grant: 'require_mfa', ...(i % 3 === 0 ? { position: 1 } : {}) })));
        expect(created.map((r) => r.status)).toEqual(Array(30).fill(201));
        await Promise.all(Array.from({ length: 10 }, (_, i) => tenant.admin('PATCH', `/v1/admin/policies/c${i}`, { position: 30 - i })));
        const positions = ((await tenant.admin('GET', '/v1/admin/policies')).body.policies as { position: number }[]).map((p) => p.position);
        expect(positions).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      });

      it(`at most ${MAX_POLICIES} policies per tenant: the next is refused (409 LIMIT_REACHED)`, async () => {
        const tenant = await newTenant();
        for (let i = 1; i <= MAX_POLICIES; i++) await tenant.policy({ name: `p${i}`, grant: 'require_mfa', enabled: false });
        const over = await tenant.admin('POST', '/v1/admin/policies', { name: 'one more', grant: 'block' });
        expect(over).toEqual({ status: 409, body: { error: { code: 'LIMIT_REACHED', message: `tenant ${tenant.name} already has ${MAX_POLICIES} policies, the most allowed; remove one first` } } });
        expect((await tenant.admin('GET', '/v1/admin/policies')).body.policies).toHaveLength(MAX_POLICIES);
      }, 120_000);

      it('named locations: IPv4 and IPv6 ranges normalized, unique names, "trusted" reserved, and one in use cannot be removed', async () => {
        const tenant = await newTenant();
        const office = await tenant.admin('POST', '/v1/admin/named-locations', { name: 'office', ranges: ['203.0.113.7/24', '2001:DB8:1::/48'], trusted: true });
        expect(office).toEqual({ status: 201, body: { id: office.body.id, name: 'office', ranges: ['203.0.113.0/24', '2001:db8:1::/48'], trusted: true, created_at: new Date(t.clock.ms()).toISOString() } });
        expect((await tenant.admin('POST', '/v1/admin/named-locations', { name: 'office', ranges: ['192.0.2.0/24'] })).status).toBe(409);
        expect((await tenant.admin('POST', '/v1/admin/named-locations', { name: 'trusted', ranges: ['192.0.2.0/24'] })).body.error.message).toMatch(/^name: "trusted" is reserved/);
        expect((await tenant.admin('POST', '/v1/admin/named-locations', { name: 'lab', ranges: ['192.0.2.0/24', 'garden'] })).body.error.message).toMatch(/^ranges\[1\]: "garden" is not/);
        expect((await tenant.admin('POST', '/v1/admin/named-locations', { name: 'lab', ranges: [] })).body.error.message).toMatch(/^ranges: /);
        expect((await tenant.admin('GET', '/v1/admin/named-locations')).body.named_locations.map((l: any) => l.name)).toEqual(['office']);

        await tenant.policy({ name: 'Office only', grant: 'block', conditions: { locations: { exclude: ['office'] } } });
        expect((await tenant.admin('DELETE', '/v1/admin/named-locations/office')).body.error).toEqual({ code: 'CONFLICT', message: 'named location "office" is used by policy "Office only"; change those first' });
        expect((await tenant.admin('DELETE', '/v1/admin/policies/Office only')).status).toBe(204);
        expect((await tenant.admin('DELETE', `/v1/admin/named-locations/${office.body.id}`)).status).toBe(204);
        expect((await tenant.admin('GET', '/v1/admin/named-locations')).body.named_locations).toEqual([]);
        expect((await audit(tenant, 'named_location.created'))[0]?.detail).toMatchObject({ name: 'office', ranges: '203.0.113.0/24,2001:db8:1::/48', trusted: true });
        expect((await audit(tenant, 'named_location.deleted'))[0]?.detail).toMatchObject({ name: 'office' });
      });
    });

    describe('preauth obeys the policies', () => {
      it('block: legacy clients of the mail application are denied policy_block, with the trace naming the policy; browsers are not', async () => {
        const tenant = await newTenant();
        await user(tenant, 'amy@contoso.com');
        await tenant.policy({ name: 'Block legacy mail', grant: 'block', conditions: { client_types: ['legacy'], applications: { include: ['mail'] } } });
        const legacy = await tenant.preauth({ username: 'amy@contoso.com', client: 'legacy' }, 'mail');
        expect(legacy.body).toMatchObject({ result: 'deny', reason: 'policy_block', methods: [] });
        expect(legacy.body.trace.map((s: Step) => s.check)).toEqual(['user', 'status', 'policy']);
        expect(decided(legacy)).toEqual({ check: 'policy', said: 'policy "Block legacy mail" (#1, block): applies: the sign-in is blocked', decided: true });
        const vpn = await tenant.preauth({ username: 'amy@contoso.com', client: 'legacy' }, 'vpn');
        expect(vpn.body.reason).toBe('app_password_required');
        expect(policySteps(vpn)).toEqual(['policy "Block legacy mail" (#1, block): does not apply — the application is not among its applications', 'none of the 1 policies applies']);
        const browser = await tenant.preauth({ username: 'amy@contoso.com' }, 'mail');
        expect(browser.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect(policySteps(browser)[0]).toBe('policy "Block legacy mail" (#1, block): does not apply — a browser client is not among its client types (legacy)');
        expect((await audit(tenant, 'preauth.decided')).map((r) => [r.detail['reason'], r.detail['policy'] ?? null])).toEqual([
          ['policy_block', 'Block legacy mail'],
          ['app_password_required', null],
          ['mfa_required', null],
        ]);
      });

      it('the exclusion group: its members are never subject to the policy', async () => {
        const tenant = await newTenant();
        await user(tenant, 'amy@contoso.com');
        await user(tenant, 'root@contoso.com', ['break-glass']);
        await tenant.policy({ name: 'Block everyone', grant: 'block', exclude_group: 'break-glass' });
        expect((await tenant.preauth({ username: 'amy@contoso.com' })).body.reason).toBe('policy_block');
        const root = await tenant.preauth({ username: 'root@contoso.com' });
        expect(root.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect(policySteps(root)[0]).toBe('policy "Block everyone" (#1, block): does not apply — the user is in its exclusion group "break-glass"');
      });

      it('allow_without_mfa from a named location (IPv6 too); first match decides, so a block below it is not reached, and a disabled policy is passed over', async () => {
        const tenant = await newTenant();
        await user(tenant, 'amy@contoso.com');
        expect((await tenant.admin('POST', '/v1/admin/named-locations', { name: 'shop floor', ranges: ['192.0.2.0/28', '2001:db8:5::/48'] })).status).toBe(201);
        await tenant.policy({ name: 'Off', grant: 'block', enabled: false });
        await tenant.policy({ name: 'Kiosk', grant: 'allow_without_mfa', conditions: { locations: { include: ['shop floor'] } } });
        await tenant.policy({ name: 'Block the rest', grant: 'block' });
        for (const ip of ['192.0.2.5', '2001:db8:5:1::9']) {
          const inside = await tenant.preauth({ username: 'amy@contoso.com', ip });
          expect(inside.body, ip).toMatchObject({ result: 'allow', reason: 'policy_allow', methods: [] });
          expect(policySteps(inside)).toEqual(['policy "Off" (#1, block): disabled', 'policy "Kiosk" (#2, allow_without_mfa): applies: the sign-in needs no second factor']);
        }
        const outside = await tenant.preauth({ username: 'amy@contoso.com', ip: '2001:db8:6::1' });
        expect(outside.body.reason).toBe('policy_block');
        expect(policySteps(outside)[1]).toBe('policy "Kiosk" (#2, allow_without_mfa): does not apply — 2001:db8:6::1 is in none of its locations (shop floor)');
        expect((await tenant.preauth({ username: 'amy@contoso.com' })).body.reason).toBe('policy_block');
        // Moving the block to the top makes it decide first.
        expect((await tenant.admin('PATCH', '/v1/admin/policies/Block the rest', { position: 1 })).status).toBe(200);
        expect((await tenant.preauth({ username: 'amy@contoso.com', ip: '192.0.2.5' })).body.reason).toBe('policy_block');
      });

      it('require_mfa: the trusted IP no longer skips the factor, and an MFA-disabled user in scope is challenged; outside its groups the trusted IP still allows', async () => {
        const tenant = await newTenant({ trusted_ips: ['203.0.113.0/24'] });
        await user(tenant, 'amy@contoso.com', ['admins']);
        await user(tenant, 'bob@contoso.com', ['sales']);
        await tenant.policy({ name: 'Admins always MFA', grant: 'require_mfa', conditions: { groups: { include: ['admins'] } } });
        const amy = await tenant.preauth({ username: 'amy@contoso.com', ip: '203.0.113.9' });
        expect(amy.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect(amy.body.trace).toContainEqual({ check: 'trusted_ip', said: '203.0.113.9 is in the trusted range 203.0.113.0/24, but policy "Admins always MFA" requires MFA' });
        expect((await tenant.preauth({ username: 'bob@contoso.com', ip: '203.0.113.9' })).body.reason).toBe('trusted_ip');
        expect((await tenant.admin('PATCH', '/v1/admin/users/amy@contoso.com', { mfa_state: 'disabled' })).status).toBe(200);
        expect((await tenant.preauth({ username: 'amy@contoso.com' })).body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
      });

      it('WA-03: require_phishing_resistant refuses TOTP: deny phishing_resistant_required', async () => {
        const tenant = await newTenant();
        await user(tenant, 'amy@contoso.com');
        await tenant.policy({ name: 'Phishing-resistant for the VPN', grant: 'require_phishing_resistant', conditions: { applications: { include: ['vpn'] } } });
        expect((await tenant.preauth({ username: 'amy@contoso.com' }, 'vpn')).body).toMatchObject({ result: 'deny', reason: 'phishing_resistant_required', methods: [] });
        expect((await tenant.preauth({ username: 'amy@contoso.com' }, 'mail')).body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
      });
    });

    describe('evaluate', () => {
      it('answers what preauth would, with the full trace, and changes nothing: no bypass used, no expiry recorded, nothing audited', async () => {
        const tenant = await newTenant();
        const amy = await user(tenant, 'amy@contoso.com', ['sales']);
        await user(tenant, 'bob@contoso.com');
        await tenant.policy({ name: 'Sales: block legacy', grant: 'block', conditions: { groups: { include: ['sales'] }, client_types: ['legacy'] } });
        await tenant.policy({ name: 'Mail without MFA', grant: 'allow_without_mfa', conditions: { applications: { include: ['mail'] } } });
        expect((await tenant.admin('POST', '/v1/admin/users/amy@contoso.com/bypass', { seconds: 300, reason: 'phone lost, ticket 4711' })).status).toBe(201);
        // bob's bypass has expired unnoticed: an evaluation must not record the expiry.
        expect((await tenant.admin('POST', '/v1/admin/users/bob@contoso.com/bypass', { seconds: 1, reason: 'test' })).status).toBe(201);
        t.clock.advance(2000);

        const snapshot = async () => ({
          audit: (await t.services.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n,
          bypasses: await t.services.db.selectFrom('bypasses').selectAll().where('tenant_id', '=', tenant.id).orderBy('id').execute(),
          users: await t.services.db.selectFrom('users').selectAll().where('tenant_id', '=', tenant.id).orderBy('id').execute(),
        });
        const before = await snapshot();

        const legacy = await tenant.admin('POST', '/v1/admin/policies/evaluate', { username: 'amy@contoso.com', client: 'legacy', ip: '2001:db8::1' });
        expect(legacy.status).toBe(200);
        expect(legacy.body).toMatchObject({ result: 'deny', reason: 'policy_block', methods: [] });
        expect(decided(legacy)?.said).toBe('policy "Sales: block legacy" (#1, block): applies: the sign-in is blocked');
        const mail = await tenant.admin('POST', '/v1/admin/policies/evaluate', { username: 'amy@contoso.com', application: 'mail' });
        expect(mail.body).toMatchObject({ result: 'allow', reason: 'policy_allow' });
        const byId = await tenant.admin('POST', '/v1/admin/policies/evaluate', { username: 'amy@contoso.com', application: tenant.mail.id });
        expect(byId.body.reason).toBe('policy_allow');
        const vpn = await tenant.admin('POST', '/v1/admin/policies/evaluate', { username: 'amy@contoso.com', application: 'vpn' });
        expect(vpn.body).toMatchObject({ result: 'allow', reason: 'bypass' });
        expect(vpn.body.trace.map((s: Step) => s.check)).toEqual(['user', 'status', 'policy', 'policy', 'policy', 'state', 'client', 'lockout', 'bypass']);
        const noApp = await tenant.admin('POST', '/v1/admin/policies/evaluate', { username: 'bob@contoso.com' });
        expect(noApp.body).toMatchObject({ result: 'challenge', reason: 'mfa_required' });
        expect(policySteps(noApp)[1]).toBe('policy "Mail without MFA" (#2, allow_without_mfa): does not apply — no application is given, and it names applications');
        expect((await tenant.admin('POST', '/v1/admin/policies/evaluate', { username: 'nobody@contoso.com' })).body).toMatchObject({ result: 'deny', reason: 'unknown_user' });

        expect(await snapshot()).toEqual(before);

        // The same sign-in for real uses the bypass, once, and says so.
        expect((await tenant.preauth({ username: 'amy@contoso.com' }, 'vpn')).body.reason).toBe('bypass');
        expect((await tenant.preauth({ username: 'amy@contoso.com' }, 'vpn')).body.reason).toBe('mfa_required');
        expect((await audit(tenant, 'bypass.used')).map((r) => r.target)).toEqual([amy.id]);
      });

      it('is documented in the OpenAPI description with the other policy routes', async () => {
        const paths = Object.keys((await t.app.inject({ method: 'GET', url: '/openapi.json' })).json().paths);
        expect(paths).toEqual(expect.arrayContaining(['/v1/admin/policies', '/v1/admin/policies/evaluate', '/v1/admin/policies/order', '/v1/admin/policies/{id}', '/v1/admin/named-locations', '/v1/admin/named-locations/{id}']));
      });

      it('bad input names the field', async () => {
        const tenant = await newTenant();
        const bad = async (body: Record<string, unknown>, pattern: RegExp) => {
          const reply = await tenant.admin('POST', '/v1/admin/policies/evaluate', body);
          expect(reply.status).toBe(400);
          expect(reply.body.error.message).toMatch(pattern);
        };
        await bad({}, /^username: is required/);
        await bad({ username: 'a@b.c', application: 'crm' }, /^application: there is no application "crm"/);
        await bad({ username: 'a@b.c', ip: '999.1.1.1' }, /^ip: /);
        await bad({ username: 'a@b.c', client: 'fax' }, /^client: /);
        await bad({ username: 'a@b.c', remember_token: 'x' }, /^remember_token: is not a known field/);
      });
    });
  });
}

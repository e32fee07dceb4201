import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registrationNudge } from '../../src/flows/registration-campaign.js';
import { findTenant } from '../../src/flows/tenants.js';
import { activateDevice } from '../support/device.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * The registration campaign (issue 5 item 1): the tenant setting, who it targets (only texts and
 * calls, not snoozed, not excluded), the nudge preauth will carry, "not now", and enrollment
 * links for every targeted user at once. On SQLite, and PostgreSQL when configured.
 */
for (const dialect of DIALECTS) {
  describe(`registration campaign (${dialect})`, () => {
    let t: TestApp;
    const campaign = () => t.admin('GET', '/v1/admin/registration-campaign?tenant=default');
    const settings = (change: Record<string, unknown>) => t.admin('PATCH', '/v1/admin/settings?tenant=default', { registration_campaign: change });
    async function user(username: string, options: { state?: string; phone?: { number: string; type: string }; groups?: string[] } = {}): Promise<void> {
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, mfa_state: options.state ?? 'enforced', ...(options.groups === undefined ? {} : { groups: options.groups }) })).status).toBe(201);
      if (options.phone !== undefined) {
        expect((await t.admin('POST', `/v1/admin/users/${username}/phones?tenant=default`, { ...options.phone, verified: true, reason: 'campaign test' })).status).toBe(201);
      }
    }
    async function nudge(username: string) {
      const tenant = await findTenant(t.services, 'default');
      const row = await t.services.db.selectFrom('users').select('id').where('tenant_id', '=', tenant.id).where('username', '=', username).executeTakeFirstOrThrow();
      return registrationNudge(t.services, tenant, row);
    }
    const usernames = async () => ((await campaign()).body.users as { username: string }[]).map((u) => u.username);

    beforeAll(async () => {
      t = await createTestApp({ dialect });
      await user('sms.only@contoso.com', { phone: { number: '+14255550101', type: 'mobile' } });
      await user('office.only@contoso.com', { phone: { number: '+14255550102', type: 'office' } });
      await user('excluded@contoso.com', { phone: { number: '+14255550103', type: 'mobile' }, groups: ['Executives'] });
      await user('disabled@contoso.com', { state: 'disabled', phone: { number: '+14255550104', type: 'mobile' } });
      await user('nothing@contoso.com');
      await user('app.user@contoso.com', { phone: { number: '+14255550105', type: 'mobile' } });
      const enrolled = await t.admin('POST', '/v1/admin/users/app.user@contoso.com/methods/totp?tenant=default', {});
      expect((await t.admin('POST', `/v1/admin/users/app.user@contoso.com/methods/${enrolled.body.method.id}/activate?tenant=default`, { code: totpAt(enrolled.body.secret, t.clock.ms()) })).status).toBe(200);
      await user('push.user@contoso.com', { phone: { number: '+14255550106', type: 'mobile' } });
      await activateDevice(t, 'push.user@contoso.com');
    });
    afterAll(async () => {
      await t.close();
    });

    it('the setting: off by default; each field checked (Azure: snooze 0–14 days), a refused change leaves it as it was', async () => {
      expect((await campaign()).body).toMatchObject({ enabled: false, method: 'push', snooze_days: 1, excluded_groups: [], method_allowed: true });
      for (const [change, field] of [
        [{ snooze_days: 15 }, 'registration_campaign.snooze_days'],
        [{ snooze_days: -1 }, 'registration_campaign.snooze_days'],
        [{ method: 'sms' }, 'registration_campaign.method'],
        [{ enabled: 'yes' }, 'registration_campaign.enabled'],
        [{ excluded_groups: 'Executives' }, 'registration_campaign.excluded_groups'],
        [{ nudge: true }, 'registration_campaign.nudge'],
      ] as const) {
        const refused = await settings(change);
        expect(refused.status).toBe(400);
        expect(refused.body.error.message).toMatch(new RegExp(`^${field.replace('.', '\\.')}: `));
      }
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { registration_campaign: 'on' })).body.error.message).toMatch(/^registration_campaign: must be an object/);
      expect((await campaign()).body).toMatchObject({ enabled: false, method: 'push', snooze_days: 1, excluded_groups: [] });
      // While off: nobody is nudged, and no links are made.
      expect(await nudge('sms.only@contoso.com')).toBeNull();
      const off = await t.admin('POST', '/v1/admin/registration-campaign/links?tenant=default');
      expect(off.status).toBe(409);
      expect(off.body.error.message).toContain('is off');
    });

    it('targets the users with only texts and calls: not the excluded, the disabled, those with nothing or with an authenticator', async () => {
      expect((await settings({ enabled: true, excluded_groups: ['Executives'], snooze_days: 2 })).status).toBe(200);
      const listed = await campaign();
      expect(listed.body).toMatchObject({ enabled: true, method: 'push', snooze_days: 2, excluded_groups: ['Executives'], next: null });
      expect(listed.body.users).toEqual([
        expect.objectContaining({ username: 'office.only@contoso.com', methods: ['voice'], snoozes: 0 }),
        expect.objectContaining({ username: 'sms.only@contoso.com', methods: ['sms', 'voice'], snoozes: 0 }),
      ]);
      expect(await nudge('sms.only@contoso.com')).toEqual({ method: 'push', snooze_days: 2, message: expect.stringContaining('Countersign Authenticator') });
      for (const other of ['app.user@contoso.com', 'push.user@contoso.com', 'excluded@contoso.com', 'disabled@contoso.com', 'nothing@contoso.com']) expect(await nudge(other)).toBeNull();
      // Preauth carries it with the challenge (and only to the targeted users).
      const pre = await t.api('POST', '/v1/preauth', { username: 'sms.only@contoso.com' });
      expect(pre.body).toMatchObject({ result: 'challenge', nudge: { method: 'push', snooze_days: 2, message: expect.stringContaining('Countersign Authenticator') } });
      expect((await t.api('POST', '/v1/preauth', { username: 'app.user@contoso.com' })).body).not.toHaveProperty('nudge');
      expect((await t.api('POST', '/v1/preauth', { username: 'nothing@contoso.com' })).body).toMatchObject({ result: 'enroll' });
      expect((await t.api('POST', '/v1/preauth', { username: 'nothing@contoso.com' })).body).not.toHaveProperty('nudge');
      // Paged by username.
      const first = await t.admin('GET', '/v1/admin/registration-campaign?tenant=default&limit=1');
      expect(first.body.users.map((u: { username: string }) => u.username)).toEqual(['office.only@contoso.com']);
      expect(first.body.next).toBe('office.only@contoso.com');
      const second = await t.admin('GET', `/v1/admin/registration-campaign?tenant=default&limit=1&after=${first.body.next}`);
      expect(second.body).toMatchObject({ users: [expect.objectContaining({ username: 'sms.only@contoso.com' })], next: null });
      expect((await t.admin('GET', '/v1/admin/registration-campaign?tenant=default&limit=0')).status).toBe(400);
      // The target method turned off: nobody is nudged.
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { allowed_methods: ['totp', 'oath', 'sms', 'voice'] })).status).toBe(200);
      expect((await campaign()).body.method_allowed).toBe(false);
      expect(await nudge('sms.only@contoso.com')).toBeNull();
      expect((await t.admin('POST', '/v1/admin/registration-campaign/links?tenant=default')).status).toBe(409);
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { allowed_methods: ['totp', 'oath', 'push', 'sms', 'voice', 'webauthn'] })).status).toBe(200);
    });

    it('"not now" (the application) snoozes a user for the snooze days; then the nudge comes back', async () => {
      const snoozed = await t.api('POST', '/v1/registration-campaign/snooze', { username: 'office.only@contoso.com' });
      expect(snoozed).toEqual({ status: 200, body: { username: 'office.only@contoso.com', snoozed_until: new Date(t.clock.ms() + 2 * 86_400_000).toISOString() } });
      expect(await nudge('office.only@contoso.com')).toBeNull();
      expect(await usernames()).toEqual(['sms.only@contoso.com']);
      expect((await t.api('POST', '/v1/registration-campaign/snooze', { username: 'nobody@contoso.com' })).status).toBe(404);
      expect((await t.admin('POST', '/v1/registration-campaign/snooze', { username: 'office.only@contoso.com' })).status).toBe(403);
      t.clock.advance(2 * 86_400_000);
      expect(await nudge('office.only@contoso.com')).toMatchObject({ method: 'push' });
      expect((await campaign()).body.users).toContainEqual(expect.objectContaining({ username: 'office.only@contoso.com', snoozes: 1 }));
    });

    it('links for every targeted user at once, for the campaign method only; users with an open link are skipped', async () => {
      const made = await t.admin('POST', '/v1/admin/registration-campaign/links?tenant=default', { expires_in_seconds: 86_400 });
      expect(made.status).toBe(201);
      expect(made.body).toMatchObject({ count: 2, skipped: 0 });
      expect(made.body.links.map((l: { username: string }) => l.username)).toEqual(['office.only@contoso.com', 'sms.only@contoso.com']);
      const link = made.body.links[1];
      expect(link.expires_at).toBe(new Date(t.clock.ms() + 86_400_000).toISOString());
      const token = new URL(link.enrollment_url).hash.replace('#enroll=', '');
      const info = await t.app.inject({ method: 'GET', url: '/v1/enrollment', headers: { authorization: `Bearer ${token}` } });
      expect(info.json()).toMatchObject({ username: 'sms.only@contoso.com', methods: ['push'] });
      const again = await t.admin('POST', '/v1/admin/registration-campaign/links?tenant=default');
      expect(again.body).toEqual({ count: 0, skipped: 2, links: [] });
      expect((await t.admin('POST', '/v1/admin/registration-campaign/links?tenant=default', { expires_in_seconds: 1 })).body.error.message).toMatch(/^expires_in_seconds: /);
      expect((await t.admin('POST', '/v1/admin/registration-campaign/links?tenant=default', { methods: ['totp'] })).body.error.message).toMatch(/^methods: is not a field here/);
      const audit = await t.services.db.selectFrom('audit_events').select(['detail']).where('action', '=', 'registration_campaign.links_created').execute();
      expect(audit.map((r) => JSON.parse(r.detail ?? '{}'))).toEqual([expect.objectContaining({ count: 2, skipped: 0, method: 'push' }), expect.objectContaining({ count: 0, skipped: 2, method: 'push' })]);
    });
  });
}

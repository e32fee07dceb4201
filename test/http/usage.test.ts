import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * Usage and licensing (issue 5 item 10): enabled users and authentications per tenant and UTC
 * day, the `seats` setting, and the `usage.seats_exceeded` warning recorded once per crossing.
 */
const DAY = 86_400_000;

for (const dialect of DIALECTS) {
  describe(`usage and seats (${dialect})`, () => {
    let t: TestApp;
    let n = 0;

    async function seatEvents(tenantId: string): Promise<{ action: string; detail: Record<string, unknown> }[]> {
      const rows = await t.services.db
        .selectFrom('audit_events')
        .select(['action', 'detail'])
        .where('tenant_id', '=', tenantId)
        .where('action', 'in', ['usage.seats_exceeded', 'usage.seats_within_limit'])
        .orderBy('seq')
        .execute();
      return rows.map((r) => ({ action: r.action, detail: JSON.parse(r.detail) as Record<string, unknown> }));
    }
    async function newTenant(seats: number | null): Promise<{ id: string; name: string }> {
      n++;
      const created = await t.admin('POST', '/v1/admin/tenants', { name: `usage${n}` });
      expect(created.status).toBe(201);
      expect((await t.admin('PATCH', `/v1/admin/settings?tenant=${created.body.name}`, { seats })).status).toBe(200);
      return { id: created.body.id, name: created.body.name };
    }
    const addUser = (tenant: string, username: string, state = 'enabled') => t.admin('POST', `/v1/admin/users?tenant=${tenant}`, { username, mfa_state: state });
    const setState = (tenant: string, username: string, state: string) => t.admin('PUT', `/v1/admin/users/${username}/state?tenant=${tenant}`, { state });
    const usage = async (tenant: string, query = '') => {
      const answer = await t.admin('GET', `/v1/admin/reports/usage?tenant=${tenant}${query}`);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      return answer.body;
    };

    beforeAll(async () => {
      t = await createTestApp({ dialect });
    });
    afterAll(async () => {
      await t.close();
    });

    it('seats is a tenant setting: null (no limit) by default, a whole number ≥ 1, and a refused change leaves it as it was', async () => {
      const tenant = await newTenant(null);
      const stored = async () => JSON.parse((await t.services.db.selectFrom('tenants').select('settings').where('id', '=', tenant.id).executeTakeFirstOrThrow()).settings).seats as unknown;
      expect(await stored()).toBeNull();
      expect((await t.admin('PATCH', `/v1/admin/settings?tenant=${tenant.name}`, { seats: 25 })).status).toBe(200);
      for (const bad of [0, -1, 2.5, 'many', true, 20_000_000]) {
        const answer = await t.admin('PATCH', `/v1/admin/settings?tenant=${tenant.name}`, { seats: bad });
        expect(answer.status, String(bad)).toBe(400);
        expect(answer.body.error.message).toMatch(/^seats: must be a whole number of at least 1/);
        expect(await stored()).toBe(25);
      }
      expect((await t.admin('PATCH', `/v1/admin/settings?tenant=${tenant.name}`, { seats: null })).status).toBe(200);
      expect(await stored()).toBeNull();
    });

    it('records usage.seats_exceeded once per crossing: not on every change above the limit, again after going back under', async () => {
      const { id, name } = await newTenant(2);
      expect((await addUser(name, 'a@x.com')).status).toBe(201);
      expect((await addUser(name, 'b@x.com')).status).toBe(201);
      expect((await addUser(name, 'off@x.com', 'disabled')).status).toBe(201);
      expect(await seatEvents(id)).toEqual([]);
      expect((await addUser(name, 'c@x.com', 'enforced')).status).toBe(201);
      expect(await seatEvents(id)).toEqual([{ action: 'usage.seats_exceeded', detail: { enabled_users: 3, seats: 2 } }]);
      // Still above: no new warning, however many changes follow.
      expect((await addUser(name, 'd@x.com')).status).toBe(201);
      expect((await setState(name, 'd@x.com', 'enforced')).status).toBe(200);
      expect((await setState(name, 'd@x.com', 'disabled')).status).toBe(200);
      expect(await seatEvents(id)).toHaveLength(1);
      const report = await usage(name);
      expect(report.current).toEqual({ enabled_users: 3, seats: 2, exceeded: true, exceeded_since: '2026-01-15T12:00:00.000Z' });
      expect(report.rows[0]).toEqual({ day: '2026-01-15', enabled_users: 3, authentications: 0, seats: 2, exceeded: true });
      // Back at the limit: recorded as such; over it again: a new warning.
      expect((await t.admin('DELETE', `/v1/admin/users/c@x.com?tenant=${name}`)).status).toBe(204);
      expect((await setState(name, 'off@x.com', 'enabled')).status).toBe(200);
      expect((await usage(name)).current).toMatchObject({ enabled_users: 3, exceeded: true });
      expect((await seatEvents(id)).map((e) => e.action)).toEqual(['usage.seats_exceeded', 'usage.seats_within_limit', 'usage.seats_exceeded']);
      // The warnings are about the tenant and say nothing else.
      const row = await t.services.db.selectFrom('audit_events').select(['actor', 'target']).where('action', '=', 'usage.seats_exceeded').where('tenant_id', '=', id).executeTakeFirstOrThrow();
      expect(row).toEqual({ actor: 'system', target: id });
    });

    it('imports and bulk state changes are checked too; concurrent creates crossing the limit record one warning', async () => {
      const { id, name } = await newTenant(3);
      const imported = await t.upload(`/v1/admin/users/import?tenant=${name}`, 'username,display name,email,phone,state\ni1@x.com,,,,enabled\ni2@x.com,,,,enabled\ni3@x.com,,,,disabled\n', 'text/csv');
      expect(imported.status).toBe(200);
      expect(await seatEvents(id)).toEqual([]);
      const states = await t.upload(`/v1/admin/users/states?tenant=${name}`, 'username,state\ni3@x.com,enforced\n', 'text/csv');
      expect(states.status).toBe(200);
      expect(await seatEvents(id)).toEqual([]);
      expect((await t.upload(`/v1/admin/users/import?tenant=${name}`, 'username,display name,email,phone,state\ni4@x.com,,,,enabled\n', 'text/csv')).status).toBe(200);
      expect(await seatEvents(id)).toEqual([{ action: 'usage.seats_exceeded', detail: { enabled_users: 4, seats: 3 } }]);
      expect((await t.upload(`/v1/admin/users/states?tenant=${name}`, 'username,state\ni4@x.com,disabled\ni3@x.com,disabled\n', 'text/csv')).status).toBe(200);
      expect((await seatEvents(id)).map((e) => e.action)).toEqual(['usage.seats_exceeded', 'usage.seats_within_limit']);

      const crowd = await newTenant(5);
      const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => addUser(crowd.name, `p${i}@x.com`)));
      expect(answers.every((a) => a.status === 201)).toBe(true);
      expect(await seatEvents(crowd.id)).toEqual([{ action: 'usage.seats_exceeded', detail: { enabled_users: expect.any(Number), seats: 5 } }]);
      expect((await usage(crowd.name)).current).toMatchObject({ enabled_users: 12, seats: 5, exceeded: true });
    });

    it('counts enabled users and authentications per UTC day as the clock moves; days without a change carry the count forward', async () => {
      const { name } = await newTenant(2);
      const appKey = (await t.admin('POST', `/v1/admin/applications?tenant=${name}`, { name: 'portal' })).body.api_key as string;
      const api = async (url: string, body: Record<string, unknown>) => {
        const response = await t.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${appKey}` }, payload: body });
        return response.json<{ result: string }>();
      };
      expect((await addUser(name, 'u1@x.com', 'enforced')).status).toBe(201);
      const enrolled = await t.admin('POST', `/v1/admin/users/u1@x.com/methods/totp?tenant=${name}`, {});
      expect((await t.admin('POST', `/v1/admin/users/u1@x.com/methods/${enrolled.body.method.id}/activate?tenant=${name}`, { code: totpAt(enrolled.body.secret, t.clock.ms()) })).status).toBe(200);
      t.clock.advance(30_000);
      const day0 = Math.floor(t.clock.ms() / DAY);
      const iso = (day: number) => new Date(day * DAY).toISOString().slice(0, 10);
      // Day 0: one enabled user, two verifications (one right, one wrong) and a preauth (not an authentication).
      expect((await api('/v1/verify', { username: 'u1@x.com', code: totpAt(enrolled.body.secret, t.clock.ms()) })).result).toBe('approved');
      expect((await api('/v1/verify', { username: 'u1@x.com', code: '000000' === totpAt(enrolled.body.secret, t.clock.ms()) ? '111111' : '000000' })).result).toBe('denied');
      expect((await api('/v1/preauth', { username: 'u1@x.com' })).result).toBe('challenge');
      // Day 1: two more users (three enabled: over the two seats), one verification.
      t.clock.set((day0 + 1) * DAY + 3_600_000);
      expect((await addUser(name, 'u2@x.com')).status).toBe(201);
      expect((await addUser(name, 'u3@x.com')).status).toBe(201);
      expect((await api('/v1/verify', { username: 'u1@x.com', code: totpAt(enrolled.body.secret, t.clock.ms()) })).result).toBe('approved');
      // Day 2: nothing happens. Day 3: one user disabled, read the report.
      t.clock.set((day0 + 3) * DAY + 7_200_000);
      expect((await setState(name, 'u3@x.com', 'disabled')).status).toBe(200);
      const report = await usage(name, `&from=${iso(day0)}`);
      expect(report.rows).toEqual([
        { day: iso(day0 + 3), enabled_users: 2, authentications: 0, seats: 2, exceeded: false },
        { day: iso(day0 + 2), enabled_users: 3, authentications: 0, seats: 2, exceeded: true },
        { day: iso(day0 + 1), enabled_users: 3, authentications: 1, seats: 2, exceeded: true },
        { day: iso(day0), enabled_users: 1, authentications: 2, seats: 2, exceeded: false },
      ]);
      expect(report.current).toEqual({ enabled_users: 2, seats: 2, exceeded: false, exceeded_since: null });
      // The default range is the last 30 days; a day before any count has none.
      const month = await usage(name);
      expect(month.rows).toHaveLength(30);
      expect(month.rows[29]).toMatchObject({ enabled_users: null, authentications: 0, exceeded: false });
      // Paged by day, and a time window.
      const first = await usage(name, `&from=${iso(day0)}&limit=3`);
      expect(first.rows.map((r: { day: string }) => r.day)).toEqual([iso(day0 + 3), iso(day0 + 2), iso(day0 + 1)]);
      expect((await usage(name, `&from=${iso(day0)}&limit=3&cursor=${first.next_cursor}`)).rows.map((r: { day: string }) => r.day)).toEqual([iso(day0)]);
      expect((await usage(name, `&from=${iso(day0 + 1)}&to=${iso(day0 + 2)}`)).rows.map((r: { day: string }) => r.day)).toEqual([iso(day0 + 1)]);
      // Per authentication also shows in the sign-in summary.
      const summary = await t.admin('GET', `/v1/admin/reports/sign-ins/summary?tenant=${name}`);
      expect(summary.body.rows).toContainEqual({ day: iso(day0), method: 'totp', result: 'approved', count: 1 });
    });
  });
}

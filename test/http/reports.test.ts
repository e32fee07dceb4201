import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportFraud } from '../../src/flows/fraud.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * The reports (issue 5 item 11) over sign-ins made for real through the Auth API — preauth,
 * one-shot verify, challenges, texts, app passwords — on every store of this run.
 */
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const DAY = 86_400_000;

for (const dialect of DIALECTS) {
  describe(`reports (${dialect})`, () => {
    let t: TestApp;
    let vpnKey: string;
    const secrets = new Map<string, string>();
    const day1 = '2026-01-15';
    const day2 = '2026-01-16';

    async function raw(url: string, headers: Record<string, string> = {}) {
      const response = await t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${t.adminKey}`, ...headers } });
      return { status: response.statusCode, headers: response.headers, body: response.body };
    }
    async function userWithTotp(username: string): Promise<void> {
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, mfa_state: 'enforced' })).status).toBe(201);
      const enrolled = await t.admin('POST', `/v1/admin/users/${username}/methods/totp?tenant=default`, {});
      expect(enrolled.status).toBe(201);
      const activated = await t.admin('POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate?tenant=default`, { code: totpAt(enrolled.body.secret, t.clock.ms()) });
      expect(activated.body.status).toBe('active');
      secrets.set(username, enrolled.body.secret);
    }
    const code = (username: string) => totpAt(secrets.get(username) ?? '', t.clock.ms());
    async function asApp(key: string, url: string, body: unknown) {
      const response = await t.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${key}` }, payload: body as Record<string, unknown> });
      return { status: response.statusCode, body: response.json() };
    }
    const report = async (path: string) => {
      const answer = await t.admin('GET', `/v1/admin/reports/${path}`);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      return answer.body;
    };

    beforeAll(async () => {
      t = await createTestApp({ dialect });
      vpnKey = (await t.admin('POST', '/v1/admin/applications?tenant=default', { name: 'vpn' })).body.api_key;
      await userWithTotp('alice@contoso.com');
      await userWithTotp('bob@contoso.com');
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'dis@contoso.com', mfa_state: 'disabled' })).status).toBe(201);
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'carol@contoso.com', phone: '+14255551234', mfa_state: 'enforced' })).status).toBe(201);
      t.clock.advance(30_000); // the activation codes' steps are used

      // Day 1 (2026-01-15), from the test app:
      expect((await t.api('POST', '/v1/preauth', { username: 'alice@contoso.com' })).body.result).toBe('challenge'); // not the end of a sign-in
      expect((await t.api('POST', '/v1/verify', { username: 'alice@contoso.com', code: code('alice@contoso.com') })).body.result).toBe('approved');
      expect((await t.api('POST', '/v1/verify', { username: 'alice@contoso.com', code: '000000' === code('alice@contoso.com') ? '111111' : '000000' })).body.result).toBe('denied');
      expect((await t.api('POST', '/v1/preauth', { username: 'dis@contoso.com', ip: '203.0.113.9' })).body.result).toBe('allow');
      expect((await t.api('POST', '/v1/preauth', { username: 'ghost@contoso.com' })).body.result).toBe('deny');
      // A text to carol (telephony), answered wrongly.
      const sms = await t.api('POST', '/v1/challenges', { username: 'carol@contoso.com', method: 'sms' });
      expect(sms.status).toBe(201);
      expect((await t.api('POST', `/v1/challenges/${sms.body.id}/answer`, { code: '999999' })).body.status).not.toBe('approved');

      // Day 2 (2026-01-16), bob through the vpn application: a challenge answered.
      t.clock.advance(DAY);
      const challenge = await asApp(vpnKey, '/v1/challenges', { username: 'bob@contoso.com', method: 'totp', context: { ip: '198.51.100.4' } });
      expect(challenge.status).toBe(201);
      expect((await asApp(vpnKey, `/v1/challenges/${challenge.body.id}/answer`, { code: code('bob@contoso.com') })).body.status).toBe('approved');
    });
    afterAll(async () => {
      await t.close();
    });

    it('lists every sign-in that ended, newest first, with method, result, reason and application', async () => {
      const body = await report('sign-ins?tenant=default');
      expect(body.next_cursor).toBeNull();
      const rows = body.rows.map((r: Record<string, unknown>) => [r['username'], r['application'], r['kind'], r['method'], r['result'], r['reason']]);
      expect(rows).toEqual([
        ['bob@contoso.com', 'vpn', 'challenge', 'totp', 'approved', null],
        ['carol@contoso.com', 'test app', 'challenge', 'sms', 'denied', 'invalid_code'],
        ['ghost@contoso.com', 'test app', 'preauth', 'none', 'denied', expect.any(String)],
        ['dis@contoso.com', 'test app', 'preauth', 'none', 'approved', expect.any(String)],
        ['alice@contoso.com', 'test app', 'verify', 'code', 'denied', 'invalid_code'],
        ['alice@contoso.com', 'test app', 'verify', 'totp', 'approved', null],
      ]);
      expect(body.rows[0]).toMatchObject({ at: '2026-01-16T12:00:30.000Z', ip: '198.51.100.4', challenge_id: expect.any(String) });
      expect(body.rows[3]).toMatchObject({ ip: '203.0.113.9', at: '2026-01-15T12:00:30.000Z' });
    });

    it('filters by username, application (name or id), result, method and time', async () => {
      const names = (b: { rows: { username: string }[] }) => b.rows.map((r) => r.username);
      expect(names(await report('sign-ins?tenant=default&username=ALICE@contoso.com'))).toEqual(['alice@contoso.com', 'alice@contoso.com']);
      expect(names(await report('sign-ins?tenant=default&application=vpn'))).toEqual(['bob@contoso.com']);
      const vpn = await t.services.db.selectFrom('applications').select('id').where('name', '=', 'vpn').executeTakeFirstOrThrow();
      expect(names(await report(`sign-ins?tenant=default&application=${vpn.id}`))).toEqual(['bob@contoso.com']);
      expect(names(await report('sign-ins?tenant=default&application=nonexistent'))).toEqual([]);
      expect(names(await report('sign-ins?tenant=default&result=approved'))).toEqual(['bob@contoso.com', 'dis@contoso.com', 'alice@contoso.com']);
      expect(names(await report('sign-ins?tenant=default&method=totp'))).toEqual(['bob@contoso.com', 'alice@contoso.com']);
      expect(names(await report(`sign-ins?tenant=default&from=${day2}`))).toEqual(['bob@contoso.com']);
      expect((await report(`sign-ins?tenant=default&to=${day2}T00:00:00Z`)).rows).toHaveLength(5);
      expect((await report(`sign-ins?tenant=default&from=${day1}T12:00:00Z&to=${day1}T12:00:31Z&result=denied`)).rows).toHaveLength(3);
    });

    it('summarizes sign-ins by UTC day, method and result', async () => {
      const body = await report('sign-ins/summary?tenant=default');
      expect(body.rows).toEqual([
        { day: day2, method: 'totp', result: 'approved', count: 1 },
        { day: day1, method: 'code', result: 'denied', count: 1 },
        { day: day1, method: 'none', result: 'approved', count: 1 },
        { day: day1, method: 'none', result: 'denied', count: 1 },
        { day: day1, method: 'sms', result: 'denied', count: 1 },
        { day: day1, method: 'totp', result: 'approved', count: 1 },
      ]);
      expect((await report(`sign-ins/summary?tenant=default&result=approved&to=${day2}`)).rows).toEqual([
        { day: day1, method: 'none', result: 'approved', count: 1 },
        { day: day1, method: 'totp', result: 'approved', count: 1 },
      ]);
      // Paged like the others: two groups, then the rest.
      const first = await report('sign-ins/summary?tenant=default&limit=2');
      expect(first.rows).toHaveLength(2);
      const rest = await report(`sign-ins/summary?tenant=default&cursor=${first.next_cursor}`);
      expect([...first.rows, ...rest.rows]).toEqual(body.rows);
      expect(rest.next_cursor).toBeNull();
    });

    it('answers CSV with ?format=csv or Accept: text/csv: a header row, then the same rows as JSON', async () => {
      const json = await report('sign-ins?tenant=default');
      for (const answer of [await raw('/v1/admin/reports/sign-ins?tenant=default&format=csv'), await raw('/v1/admin/reports/sign-ins?tenant=default', { accept: 'text/csv' })]) {
        expect(answer.status).toBe(200);
        expect(answer.headers['content-type']).toMatch(/^text\/csv/);
        expect(answer.headers['content-disposition']).toBe('attachment; filename="sign-ins.csv"');
        const records = parse(answer.body);
        expect(records[0]).toEqual(['at', 'username', 'application', 'kind', 'method', 'result', 'reason', 'ip', 'challenge_id']);
        expect(records.slice(1)).toEqual(json.rows.map((r: Record<string, string | number | boolean | null>) => Object.values(r).map((v) => (v === null ? '' : String(v)))));
      }
      // Paged CSV: the next cursor travels in X-Next-Cursor.
      const paged = await raw('/v1/admin/reports/sign-ins?tenant=default&format=csv&limit=4');
      expect(paged.headers['x-next-cursor']).toEqual(expect.any(String));
      const next = await raw(`/v1/admin/reports/sign-ins?tenant=default&format=csv&cursor=${String(paged.headers['x-next-cursor'])}`);
      expect(parse(next.body).slice(1).map((r) => r[1])).toEqual(['alice@contoso.com', 'alice@contoso.com']);
      expect(next.headers['x-next-cursor']).toBeUndefined();
      // Every report has a CSV form with a header row.
      for (const path of ['sign-ins/summary', 'fraud', 'blocked-users', 'bypasses', 'app-passwords', 'telephony', 'usage']) {
        const answer = await raw(`/v1/admin/reports/${path}?tenant=default&format=csv`);
        expect(answer.status, path).toBe(200);
        expect(answer.body.split('\r\n')[0]).toMatch(/^[a-z_]+(,[a-z_]+)+$/);
      }
    });

    it('pages through every row once with a stable cursor while new sign-ins arrive between pages', async () => {
      const before = (await report('sign-ins?tenant=default&limit=1000')).rows;
      const seen: unknown[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const body: { rows: unknown[]; next_cursor: string | null } = await report(`sign-ins?tenant=default&limit=2${cursor === null ? '' : `&cursor=${cursor}`}`);
        seen.push(...body.rows);
        cursor = body.next_cursor;
        pages++;
        // New sign-ins arrive meanwhile: newer than the page, so they neither repeat nor shift it.
        t.clock.advance(1000);
        expect((await t.api('POST', '/v1/preauth', { username: 'dis@contoso.com' })).body.result).toBe('allow');
      } while (cursor !== null);
      expect(pages).toBe(Math.ceil(before.length / 2));
      expect(seen).toEqual(before);
      // The new ones are there afterwards, newest first.
      const after = (await report('sign-ins?tenant=default&limit=1000')).rows;
      expect(after).toHaveLength(before.length + pages);
      expect(after.slice(pages)).toEqual(before);
    });

    it('sign-in rows are copied from the audit log once: concurrent readers add nothing twice, and a rebuild gives the same rows', async () => {
      for (let i = 0; i < 5; i++) await t.api('POST', '/v1/preauth', { username: 'dis@contoso.com' });
      const answers = await Promise.all(Array.from({ length: 6 }, () => t.admin('GET', '/v1/admin/reports/sign-ins?tenant=default&limit=1000')));
      for (const answer of answers) expect(answer.body.rows).toEqual(answers[0]?.body.rows);
      const stored = await t.services.db.selectFrom('sign_ins').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', t.tenant.id).executeTakeFirstOrThrow();
      expect(Number(stored.n)).toBe(answers[0]?.body.rows.length);
      // The audit log is the source: drop the copy and its watermark, and the report is the same.
      await t.services.db.deleteFrom('sign_ins').execute();
      await t.services.db.deleteFrom('store_meta').where('name', '=', 'sign_ins_seq').execute();
      expect((await t.admin('GET', '/v1/admin/reports/sign-ins?tenant=default&limit=1000')).body.rows).toEqual(answers[0]?.body.rows);
    });

    it('refuses bad input with 400 naming the field, and filters a report does not have', async () => {
      const bad = async (query: string, field: string, path = 'sign-ins') => {
        const answer = await t.admin('GET', `/v1/admin/reports/${path}?tenant=default&${query}`);
        expect(answer.status, query).toBe(400);
        expect(answer.body.error).toEqual({ code: 'INVALID_INPUT', message: expect.stringMatching(new RegExp(`^${field}: `)) });
      };
      await bad('cursor=not-a-cursor', 'cursor');
      await bad(`cursor=${Buffer.from('{"r":"sign-ins"}').toString('base64url')}`, 'cursor');
      await bad('cursor=%25%25', 'cursor');
      // A cursor of another report is refused too.
      const summary = await report('sign-ins/summary?tenant=default&limit=1');
      await bad(`cursor=${summary.next_cursor}`, 'cursor');
      await bad('from=yesterday', 'from');
      await bad('from=2026-13-45', 'from');
      await bad('to=1700000000', 'to');
      await bad(`from=${day2}&to=${day1}`, 'to');
      await bad('limit=0', 'limit');
      await bad('limit=1001', 'limit');
      await bad('limit=ten', 'limit');
      await bad('result=maybe', 'result');
      await bad('method=carrier-pigeon', 'method');
      await bad('username=has%20space', 'username');
      await bad('format=xml', 'format');
      await bad('result=denied', 'result', 'fraud');
      await bad('from=2026-01-01', 'from', 'blocked-users');
      await bad('application=vpn', 'application', 'usage');
      expect((await t.admin('GET', '/v1/admin/reports/sign-ins?tenant=default&colour=red')).body.error.message).toMatch(/^query\.colour: /);
    });

    it('fraud alerts and blocked users: a fraud report, a lockout, each listed and filtered', async () => {
      const challenge = await asApp(vpnKey, '/v1/challenges', { username: 'bob@contoso.com', method: 'totp', context: { ip: '192.0.2.50' } });
      const row = await t.services.db.selectFrom('challenges').selectAll().where('id', '=', challenge.body.id).executeTakeFirstOrThrow();
      expect(await reportFraud(t.services, t.tenant, row, 'push')).toBe(true);
      const fraud = await report('fraud?tenant=default');
      expect(fraud.rows).toEqual([{ at: expect.any(String), username: 'bob@contoso.com', application: 'vpn', method: 'totp', source: 'push', ip: '192.0.2.50', challenge_id: row.id, user_blocked: true }]);
      expect((await report('fraud?tenant=default&username=alice@contoso.com')).rows).toEqual([]);
      expect((await report('sign-ins?tenant=default&result=fraud')).rows).toHaveLength(1);

      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { lockout_threshold: 2 })).status).toBe(200);
      await userWithTotp('dave@contoso.com');
      for (let i = 0; i < 2; i++) await t.api('POST', '/v1/verify', { username: 'dave@contoso.com', code: '000000' === code('dave@contoso.com') ? '111111' : '000000' });
      const blocked = await report('blocked-users?tenant=default');
      expect(blocked.rows).toEqual([
        { username: 'bob@contoso.com', display_name: null, status: 'blocked', reason: 'fraud', blocked_until: expect.any(String), locked_until: null, failed_count: expect.any(Number) },
        { username: 'dave@contoso.com', display_name: null, status: 'locked_out', reason: 'lockout', blocked_until: null, locked_until: expect.any(String), failed_count: expect.any(Number) },
      ]);
      expect((await report('blocked-users?tenant=default&result=locked_out')).rows.map((r: { username: string }) => r.username)).toEqual(['dave@contoso.com']);
      expect((await report('blocked-users?tenant=default&result=blocked')).rows.map((r: { username: string }) => r.username)).toEqual(['bob@contoso.com']);
      const page = await report('blocked-users?tenant=default&limit=1');
      expect((await report(`blocked-users?tenant=default&cursor=${page.next_cursor}`)).rows.map((r: { username: string }) => r.username)).toEqual(['dave@contoso.com']);
      // An administrator's unlock takes dave off the report.
      expect((await t.admin('POST', '/v1/admin/users/dave@contoso.com/unlock?tenant=default')).status).toBe(200);
      expect((await report('blocked-users?tenant=default')).rows.map((r: { username: string }) => r.username)).toEqual(['bob@contoso.com']);
    });

    it('bypasses: granted, used (by which application), expired and revoked, filtered by status', async () => {
      expect((await t.admin('POST', '/v1/admin/users/alice@contoso.com/bypass?tenant=default', { reason: 'lost phone' })).status).toBe(201);
      expect(await asApp(vpnKey, '/v1/preauth', { username: 'alice@contoso.com' })).toMatchObject({ body: { result: 'allow', reason: 'bypass' } });
      t.clock.advance(1000);
      expect((await t.admin('POST', '/v1/admin/users/carol@contoso.com/bypass?tenant=default', { seconds: 60, reason: 'travelling' })).status).toBe(201);
      t.clock.advance(61_000);
      const revoked = await t.admin('POST', '/v1/admin/users/dis@contoso.com/bypass?tenant=default', { seconds: 600, reason: 'by mistake' });
      expect((await t.admin('DELETE', `/v1/admin/bypasses/${revoked.body.id}?tenant=default`)).status).toBe(204);
      t.clock.advance(1000);
      expect((await t.admin('POST', '/v1/admin/users/dave@contoso.com/bypass?tenant=default', { seconds: 600, reason: 'still open' })).status).toBe(201);
      const all = await report('bypasses?tenant=default');
      expect(all.rows.map((r: Record<string, unknown>) => [r['username'], r['status'], r['used_by']])).toEqual([
        ['dave@contoso.com', 'active', null],
        ['dis@contoso.com', 'revoked', null],
        ['carol@contoso.com', 'expired', null],
        ['alice@contoso.com', 'used', 'vpn'],
      ]);
      expect(all.rows[3]).toMatchObject({ reason: 'lost phone', granted_by: expect.stringMatching(/^admin-key:/), used_at: expect.any(String) });
      for (const status of ['active', 'revoked', 'expired', 'used']) {
        expect((await report(`bypasses?tenant=default&result=${status}`)).rows.map((r: { status: string }) => r.status)).toEqual([status]);
      }
      expect((await report('bypasses?tenant=default&application=vpn')).rows).toHaveLength(1);
      const first = await report('bypasses?tenant=default&limit=3');
      expect((await report(`bypasses?tenant=default&limit=3&cursor=${first.next_cursor}`)).rows.map((r: { username: string }) => r.username)).toEqual(['alice@contoso.com']);
      // The bypass also shows as a sign-in allowed without a second factor.
      expect((await report('sign-ins?tenant=default&username=alice@contoso.com&limit=1')).rows[0]).toMatchObject({ kind: 'preauth', method: 'none', result: 'approved', reason: 'bypass', application: 'vpn' });
    });

    it('app-password use: approved and denied legacy sign-ins, never the password', async () => {
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { app_passwords_allowed: true })).status).toBe(200);
      const created = await t.admin('POST', '/v1/admin/users/alice@contoso.com/app-passwords?tenant=default', { name: 'iPhone Mail' });
      expect((await t.api('POST', '/v1/app-passwords/verify', { username: 'alice@contoso.com', password: created.body.password, ip: '203.0.113.77' })).body.result).toBe('approved');
      expect((await t.api('POST', '/v1/app-passwords/verify', { username: 'alice@contoso.com', password: 'abcd efgh ijkl mnop qrst uvwx yzab' })).body.result).toBe('denied');
      const body = await report('app-passwords?tenant=default');
      expect(body.rows.map((r: Record<string, unknown>) => [r['username'], r['result'], r['reason'], r['application']])).toEqual([
        ['alice@contoso.com', 'denied', 'invalid_password', 'test app'],
        ['alice@contoso.com', 'approved', null, 'test app'],
      ]);
      expect(body.rows[1].ip).toBe('203.0.113.77');
      expect((await report('app-passwords?tenant=default&result=approved')).rows).toHaveLength(1);
      const csv = await raw('/v1/admin/reports/app-passwords?tenant=default&format=csv');
      expect(csv.body).not.toContain(created.body.password);
      expect(JSON.stringify(await report('sign-ins?tenant=default&limit=1000'))).not.toContain(created.body.password);
    });

    it('telephony: texts per day, country and status', async () => {
      const body = await report('telephony?tenant=default');
      expect(body.rows).toEqual([{ day: day1, kind: 'sms', country: 'US', status: expect.any(String), count: 1, units: 1 }]);
      expect((await report(`telephony?tenant=default&from=${day2}`)).rows).toEqual([]);
      expect((await report('telephony?tenant=default&username=alice@contoso.com')).rows).toEqual([]);
      expect((await report(`telephony?tenant=default&result=${body.rows[0].status}`)).rows).toHaveLength(1);
    });

    it('server status: version, uptime, store without password, migrations, queue depths', async () => {
      const status = await t.admin('GET', '/v1/admin/status');
      expect(status.status).toBe(200);
      expect(status.body).toMatchObject({ version: VERSION, uptime_seconds: expect.any(Number), store: { dialect }, tenant: null });
      expect(status.body.migrations.applied).toContain('009-usage');
      expect(status.body.migrations.pending).toEqual([]);
      expect(status.body.queues).toEqual({ challenges_open: expect.any(Number), notifications_queued: expect.any(Number), outbox_waiting: expect.any(Number), sign_ins_behind: expect.any(Number) });
      expect(status.body.queues.challenges_open).toBeGreaterThanOrEqual(0);
      expect(status.body.store.location).toEqual(expect.any(String));
      if (dialect === 'postgres') expect(status.body.store.location).not.toMatch(/:[^/@]+@/);
      expect(status.body.audit.records).toBeGreaterThan(10);
      // An application key is not an administrator.
      expect((await t.api('GET', '/v1/admin/status')).status).toBe(403);
      // Every report is in the OpenAPI document.
      const openapi = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, unknown> }>();
      for (const path of ['sign-ins', 'sign-ins/summary', 'fraud', 'blocked-users', 'bypasses', 'app-passwords', 'telephony', 'usage']) expect(Object.keys(openapi.paths)).toContain(`/v1/admin/reports/${path}`);
      expect(Object.keys(openapi.paths)).toContain('/v1/admin/status');
    });
  });
}

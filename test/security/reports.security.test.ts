import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csvCell, writeCsv } from '../../src/core/csv.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * Attacks on the reports: another tenant's administrator, a cursor carried across tenants, CSV
 * formula injection through attacker-chosen text (usernames, reasons, names), and secrets in any
 * report or log line.
 */
const REPORTS = ['sign-ins', 'sign-ins/summary', 'fraud', 'blocked-users', 'bypasses', 'app-passwords', 'telephony', 'usage'];

describe('CSV cells (formula injection)', () => {
  it('prefixes cells a spreadsheet would run as a formula, quotes what needs quoting, keeps numbers as numbers', () => {
    expect(csvCell('=1+2')).toBe("'=1+2");
    expect(csvCell('+1')).toBe("'+1");
    expect(csvCell('-2+3')).toBe("'-2+3");
    expect(csvCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvCell('\t=1')).toBe("'\t=1");
    expect(csvCell('\r=1')).toBe(`"'\r=1"`);
    expect(csvCell('=HYPERLINK("http://evil.example","x")')).toBe(`"'=HYPERLINK(""http://evil.example"",""x"")"`);
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('line\nbreak')).toBe('"line\nbreak"');
    expect(csvCell(-3)).toBe('-3');
    expect(csvCell(null)).toBe('');
    expect(csvCell(true)).toBe('true');
    expect(writeCsv(['a', 'b'], [['=x', 1]])).toBe("a,b\r\n'=x,1\r\n");
  });
});

for (const dialect of DIALECTS) {
  describe(`reports security (${dialect})`, () => {
    let t: TestApp;
    let adminB: string;
    let appB: string;
    const secrets: string[] = [];
    let tenantB: { id: string; name: string };

    const as = async (key: string, url: string) => {
      const response = await t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });
      return { status: response.statusCode, body: response.body, headers: response.headers };
    };

    beforeAll(async () => {
      t = await createTestApp({ dialect });
      secrets.push(t.adminKey, t.appKey);
      const b = await t.admin('POST', '/v1/admin/tenants', { name: 'fabrikam' });
      tenantB = { id: b.body.id, name: b.body.name };
      adminB = (await t.admin('POST', `/v1/admin/admin-keys?tenant=${tenantB.name}`, { name: 'fabrikam admin' })).body.api_key;
      appB = (await t.admin('POST', `/v1/admin/applications?tenant=${tenantB.name}`, { name: 'fabrikam app' })).body.api_key;
      secrets.push(adminB, appB);

      // Tenant A (default): a user with TOTP, sign-ins, a bypass, an app password, a lockout.
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'alice@contoso.com', mfa_state: 'enforced', display_name: '=cmd|" /C calc"!A0' })).status).toBe(201);
      const enrolled = await t.admin('POST', '/v1/admin/users/alice@contoso.com/methods/totp?tenant=default', {});
      secrets.push(enrolled.body.secret);
      const activation = totpAt(enrolled.body.secret, t.clock.ms());
      await t.admin('POST', `/v1/admin/users/alice@contoso.com/methods/${enrolled.body.method.id}/activate?tenant=default`, { code: activation });
      t.clock.advance(30_000);
      const good = totpAt(enrolled.body.secret, t.clock.ms());
      secrets.push(good);
      expect((await t.api('POST', '/v1/verify', { username: 'alice@contoso.com', code: good })).body.result).toBe('approved');
      expect((await t.api('POST', '/v1/verify', { username: 'alice@contoso.com', code: good })).body.result).toBe('denied'); // a replay
      expect((await t.admin('POST', '/v1/admin/users/alice@contoso.com/bypass?tenant=default', { reason: '@SUM(1+1)*cmd|" /C calc"!A0' })).status).toBe(201);
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { app_passwords_allowed: true, lockout_threshold: 1 })).status).toBe(200);
      const password = (await t.admin('POST', '/v1/admin/users/alice@contoso.com/app-passwords?tenant=default', { name: '+SUM(1)' })).body.password as string;
      secrets.push(password, password.replace(/ /g, ''));
      expect((await t.api('POST', '/v1/app-passwords/verify', { username: 'alice@contoso.com', password })).body.result).toBe('approved');
      // A wrong code now locks alice out (threshold 1): she is on the blocked-users report.
      expect((await t.api('POST', '/v1/verify', { username: 'alice@contoso.com', code: good === '000000' ? '111111' : '000000' })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
      // Attacker-chosen usernames reach the sign-in report through preauth of unknown users.
      for (const username of ['=HYPERLINK("http://evil.example","open")', '+1+2@x', '-2+3@x', '@SUM(A1)@x']) {
        expect((await t.api('POST', '/v1/preauth', { username })).body.result).toBe('deny');
      }
      // Tenant B has a sign-in of its own.
      expect((await t.admin('POST', `/v1/admin/users?tenant=${tenantB.name}`, { username: 'bob@fabrikam.example' })).status).toBe(201);
      const preauthB = await t.app.inject({ method: 'POST', url: '/v1/preauth', headers: { authorization: `Bearer ${appB}` }, payload: { username: 'bob@fabrikam.example' } });
      expect(preauthB.json()).toMatchObject({ result: 'allow' });
    });
    afterAll(async () => {
      await t.close();
    });

    it("tenant B's administrator never sees tenant A's rows: naming A is 404, every report of B holds only B's", async () => {
      const a = await t.admin('GET', '/v1/admin/reports/sign-ins?tenant=default');
      expect(a.body.rows.length).toBeGreaterThan(4);
      for (const report of REPORTS) {
        expect((await as(adminB, `/v1/admin/reports/${report}?tenant=default`)).status, report).toBe(404);
        expect((await as(adminB, `/v1/admin/reports/${report}?tenant=${t.tenant.id}&format=csv`)).status, report).toBe(404);
        const own = await as(adminB, `/v1/admin/reports/${report}`);
        expect(own.status, report).toBe(200);
        expect(own.body).not.toContain('alice');
        expect(own.body).not.toContain('contoso');
        expect(own.body.toLowerCase()).not.toContain('hyperlink');
      }
      const own = JSON.parse((await as(adminB, '/v1/admin/reports/sign-ins')).body) as { rows: { username: string }[] };
      expect(own.rows.map((r) => r.username)).toEqual(['bob@fabrikam.example']);
      // An application key is not an administrator, whichever tenant.
      expect((await as(t.appKey, '/v1/admin/reports/sign-ins?tenant=default')).status).toBe(403);
      expect((await as(appB, '/v1/admin/reports/sign-ins')).status).toBe(403);
    });

    it("a cursor from tenant A used with tenant B is refused, and a forged one gives nothing of A's", async () => {
      const page = await t.admin('GET', '/v1/admin/reports/sign-ins?tenant=default&limit=1');
      const cursor = page.body.next_cursor as string;
      expect(cursor).toEqual(expect.any(String));
      const carried = await as(adminB, `/v1/admin/reports/sign-ins?cursor=${cursor}`);
      expect(carried.status).toBe(400);
      expect(JSON.parse(carried.body).error.message).toMatch(/^cursor: /);
      // The same position written for B's tenant: only B's rows before it.
      const decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { r: string; t: string; p: unknown[] };
      const forged = Buffer.from(JSON.stringify({ ...decoded, t: tenantB.id, p: [Number.MAX_SAFE_INTEGER] })).toString('base64url');
      const rows = JSON.parse((await as(adminB, `/v1/admin/reports/sign-ins?cursor=${forged}`)).body).rows as { username: string }[];
      expect(rows.map((r) => r.username)).toEqual(['bob@fabrikam.example']);
      // Positions are bound parameters of the report's own shape: SQL in one is only text, a wrong shape is refused.
      for (const [report, position] of [['blocked-users', ["' or 1=1 --"]], ['bypasses', [Date.UTC(2030, 0, 1), "' or 1=1 --"]]] as const) {
        const injected = Buffer.from(JSON.stringify({ r: report, t: tenantB.id, p: position })).toString('base64url');
        const answer = await as(adminB, `/v1/admin/reports/${report}?cursor=${injected}`);
        expect(answer.status, report).toBe(200);
        expect(answer.body).not.toContain('alice');
        const misshapen = Buffer.from(JSON.stringify({ r: report, t: tenantB.id, p: [1.5, 'x', 'y'] })).toString('base64url');
        expect((await as(adminB, `/v1/admin/reports/${report}?cursor=${misshapen}`)).status, report).toBe(400);
      }
    });

    it("server status for tenant B's administrator: B's queues only, and not where the store is", async () => {
      const status = JSON.parse((await as(adminB, '/v1/admin/status')).body) as { tenant: string; store: { location: string | null }; audit: { records: number } };
      expect(status.tenant).toBe('fabrikam');
      expect(status.store.location).toBeNull();
      const all = await t.admin('GET', '/v1/admin/status');
      expect(status.audit.records).toBeLessThan(all.body.audit.records);
    });

    it('CSV formula injection: cells from usernames, names and reasons starting with = + - @ are prefixed with \'', async () => {
      const signIns = parse((await as(t.adminKey, '/v1/admin/reports/sign-ins?tenant=default&format=csv')).body);
      const usernames = signIns.slice(1).map((r) => r[1]);
      expect(usernames).toEqual(expect.arrayContaining([`'=hyperlink("http://evil.example","open")`, "'+1+2@x", "'-2+3@x", "'@sum(a1)@x"]));
      expect(usernames.every((u) => u === undefined || !/^[=+\-@]/.test(u))).toBe(true);
      const bypasses = parse((await as(t.adminKey, '/v1/admin/reports/bypasses?tenant=default&format=csv')).body);
      expect(bypasses[1]?.[2]).toBe(`'@SUM(1+1)*cmd|" /C calc"!A0`);
      const blocked = parse((await as(t.adminKey, '/v1/admin/reports/blocked-users?tenant=default&format=csv')).body);
      expect(blocked[0]).toEqual(['username', 'display_name', 'status', 'reason', 'blocked_until', 'locked_until', 'failed_count']);
      expect(blocked.slice(1).map((r) => r[1])).toEqual([`'=cmd|" /C calc"!A0`]);
      // In JSON the text stays as it is: only spreadsheets need the prefix.
      const json = await t.admin('GET', '/v1/admin/reports/blocked-users?tenant=default');
      expect(json.body.rows[0].display_name).toBe('=cmd|" /C calc"!A0');
      // Every cell of every CSV report is safe.
      for (const report of REPORTS) {
        const cells = (parse((await as(t.adminKey, `/v1/admin/reports/${report}?tenant=default&format=csv`)).body)).flat();
        expect(cells.filter((c) => /^[=+@]/.test(c) || /^-[^0-9]/.test(c)), report).toEqual([]);
      }
    });

    it('LOG-01: no report, in JSON or CSV, and no log line holds a key, seed, code or password', async () => {
      const bodies: string[] = [];
      for (const report of REPORTS) {
        bodies.push((await as(t.adminKey, `/v1/admin/reports/${report}?tenant=default&limit=1000`)).body);
        bodies.push((await as(t.adminKey, `/v1/admin/reports/${report}?tenant=default&limit=1000&format=csv`)).body);
      }
      bodies.push((await as(t.adminKey, '/v1/admin/status')).body);
      const everything = [...bodies, ...t.logs].join('\n');
      for (const secret of secrets) expect(everything.includes(secret), 'a secret was found in a report or log').toBe(false);
      // The store location of a PostgreSQL store carries no password.
      expect(JSON.parse(bodies[bodies.length - 1] ?? '{}').store.location).not.toMatch(/:\/\/[^/@]*:[^/@]*@/);
    });
  });
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_APP_PASSWORDS_PER_USER } from '../../src/flows/app-passwords.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';

/** App passwords through the admin API and the Auth API, on every store of this run (SQLite, and PostgreSQL when configured). */
for (const dialect of DIALECTS) {
  describe(`app passwords (${dialect})`, () => {
    let t: TestApp;
    let n = 0;
    const url = (username: string, rest = '') => `/v1/admin/users/${encodeURIComponent(username)}/app-passwords${rest}?tenant=default`;
    const verify = (body: Record<string, unknown>) => t.api('POST', '/v1/app-passwords/verify', body);
    async function newUser(state = 'enforced'): Promise<string> {
      n++;
      const username = `legacy${n}@contoso.com`;
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, mfa_state: state })).status).toBe(201);
      return username;
    }
    async function audit(action: string): Promise<Record<string, unknown>[]> {
      const rows = await t.services.db.selectFrom('audit_events').select(['detail']).where('action', '=', action).orderBy('seq').execute();
      return rows.map((r) => JSON.parse(r.detail ?? '{}') as Record<string, unknown>);
    }

    beforeAll(async () => {
      t = await createTestApp({ dialect });
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { app_passwords_allowed: true })).status).toBe(200);
    });
    afterAll(async () => {
      await t.close();
    });

    it('are refused (403) while the tenant does not allow them, the default', async () => {
      expect((await t.admin('POST', '/v1/admin/tenants', { name: 'fabrikam' })).status).toBe(201);
      expect((await t.admin('GET', '/v1/admin/settings?tenant=fabrikam')).body.app_passwords_allowed).toBe(false);
      expect((await t.admin('POST', '/v1/admin/users?tenant=fabrikam', { username: 'fred@fabrikam.com', mfa_state: 'enforced' })).status).toBe(201);
      const refused = await t.admin('POST', '/v1/admin/users/fred@fabrikam.com/app-passwords?tenant=fabrikam', { name: 'iPhone Mail' });
      expect(refused.status).toBe(403);
      expect(refused.body.error).toEqual({ code: 'FORBIDDEN', message: expect.stringContaining('app passwords are turned off for tenant fabrikam') });
    });

    it('are created with a name, shown once, listed without the password, and sign a legacy client in', async () => {
      const username = await newUser();
      const created = await t.admin('POST', url(username), { name: 'iPhone Mail' });
      expect(created.status).toBe(201);
      expect(Object.keys(created.body).sort()).toEqual(['created_at', 'id', 'name', 'password']);
      expect(created.body).toMatchObject({ name: 'iPhone Mail', created_at: '2026-01-15T12:00:00.000Z' });
      expect(created.body.password).toMatch(/^[a-z]{4}( [a-z]{4}){6}$/);
      const listed = await t.admin('GET', url(username));
      expect(listed).toEqual({ status: 200, body: { app_passwords: [{ id: created.body.id, name: 'iPhone Mail', created_at: '2026-01-15T12:00:00.000Z', last_used_at: null, last_used_ip: null }] } });

      expect((await verify({ username, password: created.body.password, ip: '203.0.113.7' })).body).toEqual({ result: 'approved', reason: 'approved' });
      // Typed without spaces, in capitals, or with hyphens: the same password.
      const letters: string = created.body.password.replace(/ /g, '');
      expect((await verify({ username: username.toUpperCase(), password: letters.toUpperCase(), client: 'legacy' })).body).toEqual({ result: 'approved', reason: 'approved' });
      expect((await verify({ username, password: created.body.password.replace(/ /g, '-') })).body.result).toBe('approved');
      const [used] = (await t.admin('GET', url(username))).body.app_passwords;
      expect(used.last_used_at).toBe('2026-01-15T12:00:00.000Z');
      // Without `ip`, the request's own address is recorded (inject's is 127.0.0.1).
      expect(used.last_used_ip).toBe('127.0.0.1');
      const records = await audit('app_password.used');
      expect(records[0]).toMatchObject({ username, name: 'iPhone Mail', app_password: created.body.id, single_factor: true, ip: '203.0.113.7', client: 'legacy' });
      expect(await audit('app_password.created')).toContainEqual({ app_password: created.body.id, name: 'iPhone Mail' });

      expect((await verify({ username, password: 'abcd efgh ijkl mnop qrst uvwx yzab' })).body).toEqual({ result: 'denied', reason: 'invalid_password' });
      expect((await verify({ username, password: 'hunter2' })).body).toEqual({ result: 'denied', reason: 'invalid_password' });
      // An unknown user looks like a wrong password.
      expect((await verify({ username: 'nobody@contoso.com', password: created.body.password })).body).toEqual({ result: 'denied', reason: 'invalid_password' });
      // The user was told a new credential exists (BND-01).
      const notices = await t.admin('GET', '/v1/admin/notifications?tenant=default');
      expect(notices.body.notifications).toContainEqual(expect.objectContaining({ kind: 'app_password_created', detail: expect.objectContaining({ username, name: 'iPhone Mail' }) }));
    });

    it('names are checked: 1–100 characters, no control characters, one per device (409 naming it)', async () => {
      const username = await newUser();
      expect((await t.admin('POST', url(username), { name: 'Outlook\r\nadmin' })).body.error).toMatchObject({ code: 'INVALID_INPUT', message: expect.stringMatching(/^name: /) });
      expect((await t.admin('POST', url(username), { name: '   ' })).status).toBe(400);
      expect((await t.admin('POST', url(username), { name: 'x'.repeat(101) })).status).toBe(400);
      expect((await t.admin('POST', url(username), { name: 'iPad', extra: 1 })).status).toBe(400);
      expect((await t.admin('POST', url(username), { name: 'iPad' })).status).toBe(201);
      const again = await t.admin('POST', url(username), { name: ' iPad ' });
      expect(again.status).toBe(409);
      expect(again.body.error.message).toContain('already has an app password named "iPad"');
      expect((await t.admin('POST', url('nobody@contoso.com'), { name: 'iPad' })).status).toBe(404);
    });

    it('need a user whose MFA is enabled or enforced', async () => {
      const disabled = await newUser('disabled');
      const refused = await t.admin('POST', url(disabled), { name: 'iPad' });
      expect(refused.status).toBe(409);
      expect(refused.body.error.message).toContain('has MFA disabled');
      expect((await t.admin('POST', url(await newUser('enabled')), { name: 'iPad' })).status).toBe(201);
    });

    it(`are at most ${MAX_APP_PASSWORDS_PER_USER} per user, even when created at once`, async () => {
      const username = await newUser();
      const user = await t.services.db.selectFrom('users').select('id').where('username', '=', username).executeTakeFirstOrThrow();
      // 36 made one by one, then 12 at once: exactly 4 more fit.
      for (let i = 0; i < MAX_APP_PASSWORDS_PER_USER - 4; i++) expect((await t.admin('POST', url(username), { name: `device ${i}` })).status).toBe(201);
      const racing = await Promise.all(Array.from({ length: 12 }, (_, i) => t.admin('POST', url(username), { name: `racer ${i}` })));
      expect(racing.filter((r) => r.status === 201)).toHaveLength(4);
      for (const r of racing.filter((r) => r.status !== 201)) {
        expect(r.body.error).toEqual({ code: 'LIMIT_REACHED', message: `user ${username} already has 40 app passwords, the most allowed; revoke one first` });
      }
      const { count } = await t.services.db.selectFrom('app_passwords').select((eb) => eb.fn.countAll<number>().as('count')).where('user_id', '=', user.id).executeTakeFirstOrThrow();
      expect(Number(count)).toBe(MAX_APP_PASSWORDS_PER_USER);
      expect((await t.admin('GET', url(username))).body.app_passwords).toHaveLength(MAX_APP_PASSWORDS_PER_USER);
      // Revoking one makes room again; with 40, the newest still verifies.
      expect((await t.admin('DELETE', url(username, '/device 0'.replace(' ', '%20')))).status).toBe(204);
      const last = await t.admin('POST', url(username), { name: 'one more' });
      expect(last.status).toBe(201);
      expect((await verify({ username, password: last.body.password })).body.result).toBe('approved');
    }, 60_000);

    it('are revoked one by id or by name, or all at once; the next use fails', async () => {
      const username = await newUser();
      const a = (await t.admin('POST', url(username), { name: 'Thunderbird' })).body;
      const b = (await t.admin('POST', url(username), { name: 'Android Mail' })).body;
      const c = (await t.admin('POST', url(username), { name: 'Old SMTP relay' })).body;
      expect((await t.admin('DELETE', url(username, `/${a.id}`))).status).toBe(204);
      expect((await verify({ username, password: a.password })).body).toEqual({ result: 'denied', reason: 'invalid_password' });
      expect((await t.admin('DELETE', url(username, `/${a.id}`))).status).toBe(404);
      expect((await t.admin('DELETE', url(username, `/${encodeURIComponent('Android Mail')}`))).status).toBe(204);
      expect((await verify({ username, password: b.password })).body.result).toBe('denied');
      expect((await verify({ username, password: c.password })).body.result).toBe('approved');
      expect(await t.admin('DELETE', url(username))).toEqual({ status: 200, body: { revoked: 1 } });
      expect((await verify({ username, password: c.password })).body.result).toBe('denied');
      expect(await t.admin('GET', url(username))).toEqual({ status: 200, body: { app_passwords: [] } });
      expect(await t.admin('DELETE', url(username))).toEqual({ status: 200, body: { revoked: 0 } });
      expect((await audit('app_password.revoked')).map((d) => d['name'])).toEqual(expect.arrayContaining(['Thunderbird', 'Android Mail']));
    });

    it('verify takes legacy clients only, refuses unknown fields, and needs an application key', async () => {
      const username = await newUser();
      const { password } = (await t.admin('POST', url(username), { name: 'iPhone Mail' })).body;
      const browser = await verify({ username, password, client: 'browser' });
      expect(browser.status).toBe(403);
      expect(browser.body.error).toEqual({ code: 'FORBIDDEN', message: expect.stringContaining('app_password_not_for_browser') });
      expect((await verify({ username, password, client: 'imap' })).status).toBe(400);
      expect((await verify({ username, password, code: '123456' })).status).toBe(400);
      expect((await verify({ username, password, ip: 'not an ip' })).body.error.message).toMatch(/^ip: /);
      expect((await t.admin('POST', '/v1/app-passwords/verify', { username, password })).status).toBe(403);
      expect((await verify({ username, password })).body.result).toBe('approved');
    });

    it('blocked and locked-out users are refused, naming why', async () => {
      const username = await newUser();
      const { password } = (await t.admin('POST', url(username), { name: 'iPhone Mail' })).body;
      await t.services.db.updateTable('users').set({ status: 'blocked', blocked_until: null }).where('username', '=', username).execute();
      expect((await verify({ username, password })).body).toEqual({ result: 'denied', reason: 'blocked' });
      await t.services.db.updateTable('users').set({ status: 'active', locked_until: t.clock.ms() + 60_000 }).where('username', '=', username).execute();
      expect((await verify({ username, password })).body).toEqual({ result: 'denied', reason: 'locked_out' });
      await t.services.db.updateTable('users').set({ locked_until: null }).where('username', '=', username).execute();
      expect((await verify({ username, password })).body).toEqual({ result: 'approved', reason: 'approved' });
    });

    it('stop working while the tenant turns them off, and work again when it turns them on', async () => {
      const username = await newUser();
      const { password } = (await t.admin('POST', url(username), { name: 'iPhone Mail' })).body;
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { app_passwords_allowed: false })).status).toBe(200);
      try {
        expect((await verify({ username, password })).body).toEqual({ result: 'denied', reason: 'app_passwords_disabled' });
        // Listing and revoking still work, so an administrator can clean up.
        expect((await t.admin('GET', url(username))).body.app_passwords).toHaveLength(1);
      } finally {
        expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { app_passwords_allowed: true })).status).toBe(200);
      }
      expect((await verify({ username, password })).body.result).toBe('approved');
    });
  });
}

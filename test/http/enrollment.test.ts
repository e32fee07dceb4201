import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newKeyPair } from '../support/device.js';
import { createTestApp, DIALECTS, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

/**
 * Enrollment links end to end (issue 5 item 1): an administrator creates a link; the user's
 * browser registers methods through the self-service API with the link's token; completing
 * spends the link and makes an enabled user enforced. On SQLite, and PostgreSQL when configured.
 */
for (const dialect of DIALECTS) {
  describe(`enrollment links (${dialect})`, () => {
    let t: TestApp;
    let n = 0;
    const linkUrl = (username: string) => `/v1/admin/users/${encodeURIComponent(username)}/enrollment-link?tenant=default`;
    async function newUser(state = 'enabled', extra: Record<string, unknown> = {}): Promise<string> {
      n++;
      const username = `enroll${n}@contoso.com`;
      expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, mfa_state: state, ...extra })).status).toBe(201);
      return username;
    }
    /** The self-service API, with the link's token as bearer. */
    async function self(token: string, method: 'GET' | 'POST', url: string, body?: unknown): Promise<{ status: number; body: any }> {
      const response = await t.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as Record<string, unknown> }) });
      return { status: response.statusCode, body: response.body === '' ? undefined : response.json() };
    }
    async function audit(action: string): Promise<{ actor: string; detail: Record<string, unknown> }[]> {
      const rows = await t.services.db.selectFrom('audit_events').select(['actor', 'detail']).where('action', '=', action).orderBy('seq').execute();
      return rows.map((r) => ({ actor: r.actor, detail: JSON.parse(r.detail ?? '{}') as Record<string, unknown> }));
    }

    beforeAll(async () => {
      t = await createTestApp({ dialect, config: { publicUrl: 'https://mfa.contoso.com' } });
    });
    afterAll(async () => {
      await t.close();
    });

    it('link → TOTP registered with a real code → completed: the user is enforced and the link is refused afterwards', async () => {
      const username = await newUser('enabled');
      // Preauth asks an enabled user with nothing registered to enroll.
      expect((await t.api('POST', '/v1/preauth', { username })).body.result).toBe('enroll');
      const created = await t.admin('POST', linkUrl(username), {});
      expect(created.status).toBe(201);
      expect(Object.keys(created.body).sort()).toEqual(['enrollment_url', 'expires_at', 'id', 'methods', 'token', 'username']);
      const token: string = created.body.token;
      expect(token).toMatch(/^cse_[A-Za-z0-9_-]{43}$/);
      expect(created.body.enrollment_url).toBe(`https://mfa.contoso.com/authenticator/#enroll=${token}`);
      expect(new URL(created.body.enrollment_url).hash).toBe(`#enroll=${token}`);
      // 7 days by default.
      expect(created.body.expires_at).toBe(new Date(t.clock.ms() + 7 * 86_400_000).toISOString());
      expect(created.body.methods).toEqual(['totp', 'push', 'sms', 'voice']);

      const info = await self(token, 'GET', '/v1/enrollment');
      expect(info).toEqual({ status: 200, body: { username, display_name: null, tenant: 'default', mfa_state: 'enabled', expires_at: created.body.expires_at, methods: ['totp', 'push', 'sms', 'voice'], registered: [] } });
      // Nothing registered yet: completing is refused and the link stays usable.
      expect((await self(token, 'POST', '/v1/enrollment/complete')).status).toBe(409);

      const totp = await self(token, 'POST', '/v1/enrollment/totp', { label: 'My phone' });
      expect(totp.status).toBe(201);
      expect(totp.body.method).toMatchObject({ type: 'totp', status: 'pending', label: 'My phone' });
      expect(totp.body.uri).toMatch(/^otpauth:\/\/totp\//);
      const wrong = await self(token, 'POST', '/v1/enrollment/totp/activate', { code: '000000' === totpAt(totp.body.secret, t.clock.ms()) ? '111111' : '000000' });
      expect(wrong.status).toBe(400);
      expect(wrong.body.error.message).toMatch(/^code: /);
      const activated = await self(token, 'POST', '/v1/enrollment/totp/activate', { code: totpAt(totp.body.secret, t.clock.ms()) });
      expect(activated.status).toBe(200);
      expect(activated.body).toMatchObject({ id: totp.body.method.id, status: 'active', default: true });
      // The first registration made the enabled user enforced (Azure) …
      expect((await t.admin('GET', `/v1/admin/users/${username}?tenant=default`)).body.mfa_state).toBe('enforced');
      // … and preauth now challenges with the new method.
      const preauth = await t.api('POST', '/v1/preauth', { username });
      expect(preauth.body.result).toBe('challenge');
      expect(preauth.body.methods).toEqual([expect.objectContaining({ id: totp.body.method.id, type: 'totp' })]);
      // The link now has 15 minutes left at most.
      expect((await self(token, 'GET', '/v1/enrollment')).body).toMatchObject({ expires_at: new Date(t.clock.ms() + 15 * 60_000).toISOString(), registered: [{ id: totp.body.method.id, type: 'totp', label: 'My phone' }] });

      const completed = await self(token, 'POST', '/v1/enrollment/complete');
      expect(completed).toEqual({ status: 200, body: { completed: true, mfa_state: 'enforced', registered: [{ id: totp.body.method.id, type: 'totp', label: 'My phone' }] } });
      for (const [method, url] of [['GET', '/v1/enrollment'], ['POST', '/v1/enrollment/totp'], ['POST', '/v1/enrollment/complete']] as const) {
        const refused = await self(token, method, url, method === 'POST' ? {} : undefined);
        expect(refused.status).toBe(401);
        expect(refused.body.error).toEqual({ code: 'UNAUTHORIZED', message: expect.stringContaining('already used') });
      }
      const links = await t.admin('GET', linkUrl(username));
      expect(links.body.links).toEqual([expect.objectContaining({ id: created.body.id, status: 'used', methods: ['totp', 'push', 'sms', 'voice'] })]);
      expect(JSON.stringify(links.body)).not.toContain(token);
      expect(await audit('enrollment.completed')).toContainEqual({ actor: `enrollment-link:${created.body.id}`, detail: expect.objectContaining({ link: created.body.id, methods: 'totp' }) });
      expect((await audit('enrollment.link_created')).find((r) => r.detail['link'] === created.body.id)?.actor).toMatch(/^admin-key:/);
    });

    it('push through the link: an activation URL for the authenticator; the activated device is registered', async () => {
      const username = await newUser('enabled');
      const { body } = await t.admin('POST', linkUrl(username), { methods: ['push'], expires_in_seconds: 3600 });
      expect(body.methods).toEqual(['push']);
      const push = await self(body.token, 'POST', '/v1/enrollment/push', {});
      expect(push.status).toBe(201);
      expect(push.body.activation_url).toMatch(/^https:\/\/mfa\.contoso\.com\/authenticator#activate=[A-Za-z0-9_-]{22}$/);
      // Only what the link allows.
      const totp = await self(body.token, 'POST', '/v1/enrollment/totp', {});
      expect(totp.status).toBe(403);
      expect(totp.body.error.message).toContain('does not allow registering totp');
      // The authenticator activates with the code.
      const code = new URL(push.body.activation_url).hash.replace('#activate=', '');
      const { publicKey } = newKeyPair();
      const activated = await t.app.inject({ method: 'POST', url: '/v1/authenticator/activate', payload: { code, public_key: publicKey, name: 'Pixel' } });
      expect(activated.statusCode).toBe(201);
      const info = await self(body.token, 'GET', '/v1/enrollment');
      expect(info.body.registered).toEqual([{ id: `push:${activated.json().device_id}`, type: 'push', label: 'Push to Pixel' }]);
      const completed = await self(body.token, 'POST', '/v1/enrollment/complete');
      expect(completed.body).toMatchObject({ completed: true, mfa_state: 'enforced' });
      expect((await t.api('POST', '/v1/preauth', { username })).body.methods).toEqual([expect.objectContaining({ type: 'push' })]);
    });

    it('a phone number through the link: a code by text, read back, and the number takes texts', async () => {
      const username = await newUser('enabled');
      const { body } = await t.admin('POST', linkUrl(username), { methods: ['sms'] });
      // Voice is not in the link: an office number (proven by a call) is refused.
      expect((await self(body.token, 'POST', '/v1/enrollment/phone', { number: '+14255550100', type: 'office' })).status).toBe(403);
      const bad = await self(body.token, 'POST', '/v1/enrollment/phone', { number: 'call me', type: 'mobile' });
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toMatch(/^number: /);
      const started = await self(body.token, 'POST', '/v1/enrollment/phone', { number: '+14255550123', type: 'mobile' });
      expect(started.status).toBe(201);
      expect(started.body).toMatchObject({ type: 'mobile', number: '+14255550123', status: 'sent' });
      const messages = (await t.admin('GET', '/v1/admin/outbox')).body.messages as { challenge_id: string; text: string }[];
      const text = messages.find((m) => m.challenge_id === started.body.challenge_id)?.text ?? '';
      const code = /\d{6}/.exec(text)?.[0] ?? '';
      expect(code).toMatch(/^\d{6}$/);
      const confirmed = await self(body.token, 'POST', '/v1/enrollment/phone/confirm', { type: 'mobile', code });
      expect(confirmed.body).toMatchObject({ status: 'approved', verified: true });
      expect((await t.admin('GET', `/v1/admin/users/${username}?tenant=default`)).body).toMatchObject({ mfa_state: 'enforced', phones: [{ type: 'mobile', number: '+14255550123', verified: true }] });
      expect((await self(body.token, 'GET', '/v1/enrollment')).body.registered).toEqual(expect.arrayContaining([expect.objectContaining({ id: 'sms:mobile', type: 'sms' })]));
    });

    it('expires: refused after its time (the clock moved), with a message saying so', async () => {
      const username = await newUser('enabled');
      const { body } = await t.admin('POST', linkUrl(username), { expires_in_seconds: 600 });
      expect((await self(body.token, 'GET', '/v1/enrollment')).status).toBe(200);
      t.clock.advance(600_000);
      const refused = await self(body.token, 'GET', '/v1/enrollment');
      expect(refused.status).toBe(401);
      expect(refused.body.error.message).toBe(`the enrollment link expired at ${body.expires_at}: ask your administrator for a new one`);
      expect((await t.admin('GET', linkUrl(username))).body.links[0].status).toBe('expired');
      // Nothing open to revoke.
      expect((await t.admin('DELETE', linkUrl(username))).status).toBe(404);
    });

    it('revoke: the open link is refused at once; a new link replaces (revokes) the open one', async () => {
      const username = await newUser('enabled');
      const first = (await t.admin('POST', linkUrl(username))).body;
      const second = (await t.admin('POST', linkUrl(username))).body;
      const replaced = await self(first.token, 'GET', '/v1/enrollment');
      expect(replaced.status).toBe(401);
      expect(replaced.body.error.message).toContain('revoked by an administrator');
      expect((await self(second.token, 'GET', '/v1/enrollment')).status).toBe(200);
      const revoked = await t.admin('DELETE', linkUrl(username));
      expect(revoked.status).toBe(200);
      expect(revoked.body).toMatchObject({ id: second.id, status: 'revoked' });
      expect((await self(second.token, 'POST', '/v1/enrollment/totp', {})).status).toBe(401);
      expect((await audit('enrollment.link_revoked')).map((r) => r.detail['link'])).toEqual(expect.arrayContaining([first.id, second.id]));
    });

    it('bad input is refused naming the field, and nothing is stored', async () => {
      const username = await newUser('enabled');
      const before = await t.services.db.selectFrom('enrollment_links').select('id').execute();
      for (const [body, field] of [
        [{ expires_in_seconds: 31 * 86_400 }, 'expires_in_seconds'],
        [{ expires_in_seconds: 10 }, 'expires_in_seconds'],
        [{ methods: [] }, 'methods'],
        [{ methods: ['oath'] }, 'methods'],
        [{ methods: ['carrier-pigeon'] }, 'methods'],
      ] as const) {
        const refused = await t.admin('POST', linkUrl(username), body);
        expect(refused.status).toBe(400);
        expect(refused.body.error.message).toMatch(new RegExp(`^${field}: `));
      }
      expect((await t.admin('POST', linkUrl(username), { extra: true })).status).toBe(400);
      // A method the tenant turned off cannot be put in a link …
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { allowed_methods: ['totp', 'oath', 'sms', 'voice', 'webauthn'] })).status).toBe(200);
      const off = await t.admin('POST', linkUrl(username), { methods: ['push'] });
      expect(off.body.error.message).toBe("methods: push is not among the tenant's allowed_methods");
      expect(await t.services.db.selectFrom('enrollment_links').select('id').execute()).toEqual(before);
      // … and disappears from a link made before it was turned off.
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { allowed_methods: ['totp', 'oath', 'push', 'sms', 'voice', 'webauthn'] })).status).toBe(200);
      const link = (await t.admin('POST', linkUrl(username), { methods: ['push', 'totp'] })).body;
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { allowed_methods: ['totp', 'oath', 'sms', 'voice', 'webauthn'] })).status).toBe(200);
      expect((await self(link.token, 'GET', '/v1/enrollment')).body.methods).toEqual(['totp']);
      expect((await self(link.token, 'POST', '/v1/enrollment/push', {})).status).toBe(403);
      expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { allowed_methods: ['totp', 'oath', 'push', 'sms', 'voice', 'webauthn'] })).status).toBe(200);
    });

    it('pre-registration: an administrator registers a number ready for texts at once, audited with the reason; the user is told', async () => {
      const username = await newUser('enabled');
      const url = `/v1/admin/users/${username}/phones?tenant=default`;
      expect((await t.admin('POST', url, { number: '+14255550142', type: 'mobile', verified: false, reason: 'x' })).body.error.message).toMatch(/^verified: must be true/);
      expect((await t.admin('POST', url, { number: '+14255550142', type: 'mobile', verified: true, reason: ' ' })).body.error.message).toMatch(/^reason: /);
      expect((await t.admin('POST', url, { number: '12', type: 'mobile', verified: true, reason: 'ok' })).body.error.message).toMatch(/^number: /);
      expect((await t.admin('POST', url, { number: '+14255550142', type: 'pager', verified: true, reason: 'ok' })).body.error.message).toMatch(/^type: /);
      expect((await t.admin('GET', `/v1/admin/users/${username}?tenant=default`)).body).toMatchObject({ phones: [], mfa_state: 'enabled' });

      const created = await t.admin('POST', url, { number: '+14255550142', type: 'mobile', verified: true, reason: 'ticket 4711: number confirmed in person' });
      expect(created).toEqual({ status: 201, body: { type: 'mobile', number: '+14255550142', verified: true, replaced: false } });
      expect((await t.admin('GET', `/v1/admin/users/${username}?tenant=default`)).body).toMatchObject({ mfa_state: 'enforced', phones: [{ type: 'mobile', number: '+14255550142', verified: true }] });
      // Usable at once: preauth offers it and a text challenge goes out.
      expect((await t.api('POST', '/v1/preauth', { username })).body.methods.map((m: { id: string }) => m.id)).toEqual(['sms:mobile', 'voice:mobile']);
      const challenge = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
      expect(challenge.status).toBe(201);
      expect(challenge.body).toMatchObject({ type: 'sms' });
      const records = await audit('phone.preregistered');
      expect(records.at(-1)?.detail).toMatchObject({ type: 'mobile', number: '+1 XXX-XXX-0142', reason: 'ticket 4711: number confirmed in person', replaced: false });
      const notices = (await t.admin('GET', '/v1/admin/notifications?tenant=default')).body.notifications;
      expect(notices).toContainEqual(expect.objectContaining({ kind: 'phone_preregistered', detail: expect.objectContaining({ username, type: 'mobile', number: '+1 XXX-XXX-0142' }) }));
    });

    it('pre-registration of a token: one from the inventory is assigned active and signs in at once', async () => {
      const username = await newUser('enabled');
      const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
      const csv = `upn,serial number,secret key,time interval,manufacturer,model\n,PRE-1,${secret},30,Contoso,T1\n`;
      expect((await t.upload('/v1/admin/tokens/import?tenant=default', csv, 'text/csv')).status).toBe(200);
      const assigned = await t.admin('POST', '/v1/admin/tokens/PRE-1/assign?tenant=default', { username });
      expect(assigned.status).toBe(200);
      expect((await t.admin('GET', `/v1/admin/users/${username}?tenant=default`)).body.mfa_state).toBe('enforced');
      expect((await t.api('POST', '/v1/verify', { username, code: totpAt(secret, t.clock.ms()) })).body.result).toBe('approved');
    });
  });
}

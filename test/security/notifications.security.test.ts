import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/harness.js';
import { totpAt } from '../support/otp.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

async function enrolled(username: string, email: string | null): Promise<string> {
  expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, email, mfa_state: 'enforced' })).status).toBe(201);
  const enrollment = await t.admin('POST', `/v1/admin/users/${username}/methods/totp?tenant=default`, {});
  await t.admin('POST', `/v1/admin/users/${username}/methods/${enrollment.body.method.id}/activate?tenant=default`, { code: totpAt(enrollment.body.secret, t.clock.ms()) });
  t.clock.advance(30_000);
  return enrollment.body.secret as string;
}

describe('notifications', () => {
  it('OTP-09: a replayed code queues one notification to its holder (not one per replay), holding no code', async () => {
    const secret = await enrolled('nina@contoso.com', 'nina@contoso.com');
    const code = totpAt(secret, t.clock.ms());
    expect((await t.api('POST', '/v1/verify', { username: 'nina@contoso.com', code, ip: '198.51.100.4' })).body.result).toBe('approved');
    expect((await t.admin('GET', '/v1/admin/notifications?tenant=default&user=nina@contoso.com')).body).toEqual({ notifications: [] });

    for (let i = 0; i < 3; i++) {
      expect((await t.api('POST', '/v1/verify', { username: 'nina@contoso.com', code, ip: '198.51.100.4' })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    }
    const listed = await t.admin('GET', '/v1/admin/notifications?tenant=default&user=nina@contoso.com');
    expect(listed.status).toBe(200);
    expect(listed.body.notifications).toHaveLength(1);
    const [notification] = listed.body.notifications;
    expect(notification).toMatchObject({ kind: 'otp_replay', channel: 'email', recipient: 'nina@contoso.com', status: 'queued' });
    expect(notification.detail).toMatchObject({ username: 'nina@contoso.com', ip: '198.51.100.4' });
    expect(JSON.stringify(listed.body)).not.toContain(code);
    expect(JSON.stringify(listed.body)).not.toContain(secret);

    // A minute later, a new replay is a new event.
    t.clock.advance(61_000);
    const later = totpAt(secret, t.clock.ms());
    expect((await t.api('POST', '/v1/verify', { username: 'nina@contoso.com', code: later })).body.result).toBe('approved');
    expect((await t.api('POST', '/v1/verify', { username: 'nina@contoso.com', code: later })).body.result).toBe('denied');
    expect((await t.admin('GET', '/v1/admin/notifications?tenant=default&user=nina@contoso.com')).body.notifications).toHaveLength(2);
  });

  it('a wrong code is not a replay and queues nothing; the outbox is per tenant', async () => {
    const secret = await enrolled('omar@contoso.com', null);
    const wrong = totpAt(secret, t.clock.ms() + 20 * 30_000);
    expect((await t.api('POST', '/v1/verify', { username: 'omar@contoso.com', code: wrong })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect((await t.admin('GET', '/v1/admin/notifications?tenant=default&user=omar@contoso.com')).body).toEqual({ notifications: [] });
    await t.admin('POST', '/v1/admin/tenants', { name: 'other' });
    expect((await t.admin('GET', '/v1/admin/notifications?tenant=other')).body).toEqual({ notifications: [] });
    expect((await t.admin('GET', '/v1/admin/notifications?tenant=other&user=nina@contoso.com')).status).toBe(404);
  });

  it('OTP-09: a notice for a user without an e-mail address is recorded as not sent, and no queue waits on it', async () => {
    const secret = await enrolled('noemail@contoso.com', null);
    const code = totpAt(secret, t.clock.ms());
    expect((await t.api('POST', '/v1/verify', { username: 'noemail@contoso.com', code })).body.result).toBe('approved');
    expect((await t.api('POST', '/v1/verify', { username: 'noemail@contoso.com', code })).body.result).toBe('denied');
    const [notice] = (await t.admin('GET', '/v1/admin/notifications?tenant=default&user=noemail@contoso.com')).body.notifications;
    expect(notice).toMatchObject({ kind: 'otp_replay', recipient: null, status: 'failed' });
    const row = await t.services.db.selectFrom('notifications').select(['status', 'last_error']).where('user_id', 'is not', null).where('recipient', 'is', null).executeTakeFirstOrThrow();
    expect(row).toEqual({ status: 'failed', last_error: 'the user has no e-mail address' });
    const queued = await t.services.db.selectFrom('notifications').select('id').where('status', '=', 'queued').where('recipient', 'is', null).execute();
    expect(queued).toEqual([]);
  });
});

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

async function userWithTotp(username: string, state = 'enforced'): Promise<{ secret: string; methodId: string }> {
  expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, mfa_state: state })).status).toBe(201);
  const enrolled = await t.admin('POST', `/v1/admin/users/${username}/methods/totp?tenant=default`, {});
  expect(enrolled.status).toBe(201);
  const code = totpAt(enrolled.body.secret, t.clock.ms());
  const activated = await t.admin('POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate?tenant=default`, { code });
  expect(activated.body.status).toBe('active');
  t.clock.advance(30_000); // the activation code's step is used; move to a fresh one
  return { secret: enrolled.body.secret, methodId: enrolled.body.method.id };
}

describe('preauth', () => {
  it('disabled → allow; enabled without methods → enroll; registered → challenge; unknown → deny', async () => {
    await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'dis@contoso.com', mfa_state: 'disabled' });
    await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'en@contoso.com', mfa_state: 'enabled' });
    const { methodId } = await userWithTotp('reg@contoso.com');
    expect((await t.api('POST', '/v1/preauth', { username: 'dis@contoso.com' })).body).toMatchObject({ result: 'allow', reason: 'mfa_disabled', methods: [] });
    expect((await t.api('POST', '/v1/preauth', { username: 'en@contoso.com' })).body).toMatchObject({ result: 'enroll', reason: 'registration_required', methods: [] });
    expect((await t.api('POST', '/v1/preauth', { username: 'REG@contoso.com' })).body).toMatchObject({
      result: 'challenge',
      reason: 'mfa_required',
      methods: [{ id: methodId, type: 'totp', label: 'Authenticator app', default: true }],
    });
    expect((await t.api('POST', '/v1/preauth', { username: 'nobody@contoso.com' })).body).toMatchObject({ result: 'deny', reason: 'unknown_user', methods: [] });
  });

  it('an enabled user who completes registration becomes enforced', async () => {
    await userWithTotp('promote@contoso.com', 'enabled');
    expect((await t.admin('GET', '/v1/admin/users/promote@contoso.com?tenant=default')).body.mfa_state).toBe('enforced');
  });

  it('blocked → deny blocked', async () => {
    await userWithTotp('blocked@contoso.com');
    await t.admin('POST', '/v1/admin/users/blocked@contoso.com/block?tenant=default');
    expect((await t.api('POST', '/v1/preauth', { username: 'blocked@contoso.com' })).body).toMatchObject({ result: 'deny', reason: 'blocked' });
  });

  it('refuses bad input naming the field', async () => {
    expect(await t.api('POST', '/v1/preauth', {})).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT', message: 'username: is required' } } });
    expect(await t.api('POST', '/v1/preauth', { username: 'a@b.c', ip: 'not-an-ip' })).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT', message: 'ip: must be an IPv4 or IPv6 address' } } });
    expect((await t.api('POST', '/v1/preauth', { username: 'a@b.c', client: 'fax' })).body.error.message).toMatch(/^client: /);
  });
});

describe('content types', () => {
  it('a CSV or XML body sent to a JSON endpoint is 415 naming content-type; imports still take files', async () => {
    for (const type of ['text/plain', 'text/csv', 'application/xml']) {
      const response = await t.app.inject({ method: 'POST', url: '/v1/verify', headers: { authorization: `Bearer ${t.appKey}`, 'content-type': type }, payload: 'username,code' });
      expect(response.statusCode).toBe(415);
      expect(response.json()).toMatchObject({ error: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
      expect(response.json<{ error: { message: string } }>().error.message).toMatch(/^content-type: /);
    }
    expect((await t.admin('POST', '/v1/admin/users/states?tenant=default', 'username,state\n')).status).toBe(200);
  });
});

describe('verify', () => {
  it('approves a current code once and tells why a code was refused', async () => {
    const { secret } = await userWithTotp('ver@contoso.com');
    const code = totpAt(secret, t.clock.ms());
    expect((await t.api('POST', '/v1/verify', { username: 'ver@contoso.com', code })).body).toEqual({ result: 'approved', reason: 'approved' });
    expect((await t.api('POST', '/v1/verify', { username: 'ver@contoso.com', code })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect((await t.api('POST', '/v1/verify', { username: 'ghost@contoso.com', code })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect((await t.api('POST', '/v1/verify', { username: 'ver@contoso.com', code: '12ab56' })).body).toEqual({ error: { code: 'INVALID_INPUT', message: 'code: must be 6 or 8 digits' } });
  });
});

describe('challenges', () => {
  it('create → wrong answer → right answer → approved; the long poll wakes on the answer', async () => {
    const { secret } = await userWithTotp('chal@contoso.com');
    const created = await t.api('POST', '/v1/challenges', { username: 'chal@contoso.com', method: 'totp', context: { app: 'VPN', ip: '203.0.113.9' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: 'pending', type: 'totp' });
    const id: string = created.body.id;
    const waiting = t.api('GET', `/v1/challenges/${id}?wait=20`);
    const wrong = totpAt(secret, t.clock.ms() + 10 * 30_000);
    expect((await t.api('POST', `/v1/challenges/${id}/answer`, { code: wrong })).body).toMatchObject({ id, status: 'pending', reason: 'invalid_code' });
    const answered = await t.api('POST', `/v1/challenges/${id}/answer`, { code: totpAt(secret, t.clock.ms()) });
    expect(answered.body).toMatchObject({ id, status: 'approved' });
    expect((await waiting).body).toMatchObject({ id, status: 'approved' });
    expect((await t.api('POST', `/v1/challenges/${id}/answer`, { code: totpAt(secret, t.clock.ms()) })).status).toBe(409);
  });

  it('RL-04: 20 racing wrong answers to one challenge: only challenge_max_attempts codes are checked, then it fails', async () => {
    const { secret } = await userWithTotp('race@contoso.com');
    const created = await t.api('POST', '/v1/challenges', { username: 'race@contoso.com', method: 'totp' });
    const wrong = totpAt(secret, t.clock.ms() + 40 * 30_000);
    const answers = await Promise.all(Array.from({ length: 20 }, () => t.api('POST', `/v1/challenges/${created.body.id}/answer`, { code: wrong })));
    const checked = answers.filter((a) => a.status === 200);
    expect(checked).toHaveLength(5);
    expect(answers.filter((a) => a.status === 409)).toHaveLength(15);
    expect((await t.api('GET', `/v1/challenges/${created.body.id}`)).body.status).toBe('failed');
    expect((await t.admin('GET', '/v1/admin/users/race@contoso.com?tenant=default')).body.failed_count).toBe(5);
  });

  it('RL-04: 50 challenges opened at once for one user: exactly challenge_max_open are created, the rest 429 with Retry-After', async () => {
    await userWithTotp('flood@contoso.com');
    const opened = await Promise.all(Array.from({ length: 50 }, () => t.app.inject({ method: 'POST', url: '/v1/challenges', headers: { authorization: `Bearer ${t.appKey}` }, payload: { username: 'flood@contoso.com', method: 'totp' } })));
    expect(opened.filter((r) => r.statusCode === 201)).toHaveLength(10);
    const refused = opened.filter((r) => r.statusCode === 429);
    expect(refused).toHaveLength(40);
    expect(refused[0]?.headers['retry-after']).toBe('300');
    expect(refused[0]?.json()).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    t.clock.advance(301_000);
    expect((await t.api('POST', '/v1/challenges', { username: 'flood@contoso.com', method: 'totp' })).status).toBe(201);
  });

  it('a challenge belongs to the application that created it: another application of the tenant gets 404', async () => {
    const { secret } = await userWithTotp('owned@contoso.com');
    const created = await t.api('POST', '/v1/challenges', { username: 'owned@contoso.com', method: 'totp' });
    const other = await t.admin('POST', '/v1/admin/applications?tenant=default', { name: 'another app' });
    const as = (method: 'GET' | 'POST', url: string, payload?: Record<string, unknown>) =>
      t.app.inject({ method, url, headers: { authorization: `Bearer ${other.body.api_key as string}` }, ...(payload === undefined ? {} : { payload }) });
    expect((await as('GET', `/v1/challenges/${created.body.id}`)).statusCode).toBe(404);
    expect((await as('POST', `/v1/challenges/${created.body.id}/answer`, { code: totpAt(secret, t.clock.ms()) })).statusCode).toBe(404);
    expect((await t.api('GET', `/v1/challenges/${created.body.id}`)).body.status).toBe('pending');
  });

  it('a challenge expires', async () => {
    await userWithTotp('exp@contoso.com');
    const created = await t.api('POST', '/v1/challenges', { username: 'exp@contoso.com', method: 'totp' });
    t.clock.advance(301_000);
    expect((await t.api('GET', `/v1/challenges/${created.body.id}`)).body.status).toBe('expired');
  });

  it('an unknown challenge is 404 and an admin key is refused on the Auth API', async () => {
    expect((await t.api('GET', '/v1/challenges/00000000-0000-0000-0000-000000000000')).status).toBe(404);
    expect((await t.admin('POST', '/v1/preauth', { username: 'x@y.z' })).status).toBe(403);
  });
});

describe('allowed methods', () => {
  it('a method type the tenant no longer allows stops working at sign-in at once, and works again when allowed', async () => {
    const { secret } = await userWithTotp('allow@contoso.com');
    expect((await t.admin('PATCH', '/v1/admin/settings?tenant=default', { allowed_methods: ['oath'] })).status).toBe(200);
    try {
      expect((await t.api('POST', '/v1/preauth', { username: 'allow@contoso.com' })).body).toMatchObject({ result: 'enroll', reason: 'registration_required', methods: [] });
      expect((await t.api('POST', '/v1/verify', { username: 'allow@contoso.com', code: totpAt(secret, t.clock.ms()) })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
      expect((await t.api('POST', '/v1/challenges', { username: 'allow@contoso.com', method: 'totp' })).status).toBe(404);
    } finally {
      await t.admin('PATCH', '/v1/admin/settings?tenant=default', { allowed_methods: ['totp', 'oath', 'push', 'sms', 'voice', 'webauthn'] });
    }
    t.clock.advance(30_000);
    expect((await t.api('POST', '/v1/verify', { username: 'allow@contoso.com', code: totpAt(secret, t.clock.ms()) })).body).toEqual({ result: 'approved', reason: 'approved' });
  });
});

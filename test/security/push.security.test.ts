import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/harness.js';
import { pushAnswerMessage } from '../../src/core/push-signature.js';
import { activateDevice, newKeyPair, signText, type TestDevice } from '../support/device.js';

/** Push approval under attack (SECURITY.md PUSH-01..04): number matching, signatures, fatigue, fraud. */
describe('push approval security', () => {
  let t: TestApp;
  let n = 0;
  async function pushUser(): Promise<{ username: string; device: TestDevice }> {
    n++;
    const username = `push${n}@contoso.com`;
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, mfa_state: 'enforced' })).status).toBe(201);
    return { username, device: await activateDevice(t, username) };
  }
  const push = (username: string, extra: Record<string, unknown> = {}) => t.api('POST', '/v1/challenges', { username, method: 'push', ...extra });
  const status = async (id: string) => (await t.api('GET', `/v1/challenges/${id}`)).body;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('PUSH-01: the sign-in screen gets a 2-digit number; approving needs it: missing or wrong → denied, right → approved', async () => {
    const { username, device } = await pushUser();
    const first = await push(username);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ status: 'pending', type: 'push' });
    expect(first.body.number).toBeGreaterThanOrEqual(10);
    expect(first.body.number).toBeLessThanOrEqual(99);
    const wrong = String(first.body.number === 99 ? 10 : first.body.number + 1);
    // The device is told which was wrong (the request is over either way).
    expect((await device.answer(first.body.id, 'approve', '')).body).toEqual({ id: first.body.id, status: 'denied', reason: 'wrong_number' });
    expect(await status(first.body.id)).toMatchObject({ status: 'denied', reason: 'wrong_number' });
    const second = await push(username);
    expect((await device.answer(second.body.id, 'approve', wrong)).body.status).toBe('denied');
    const third = await push(username);
    expect((await device.answer(third.body.id, 'approve', String(third.body.number))).body.status).toBe('approved');
    expect(await status(third.body.id)).toMatchObject({ status: 'approved' });
  });

  it('PUSH-01: an approval signed for challenge A, replayed on B, is refused; so are unsigned, stale and other-key answers', async () => {
    const { username, device } = await pushUser();
    const a = await push(username);
    const b = await push(username);
    const replayed = await device.answer(b.body.id, 'approve', String(a.body.number), { signedFor: a.body.id });
    expect(replayed.status).toBe(403);
    expect((await device.answer(b.body.id, 'approve', String(b.body.number), { timestamp: t.clock.ms() - 61_000 })).status).toBe(403);
    expect((await device.answer(b.body.id, 'approve', String(b.body.number), { signWith: newKeyPair().privateKey })).status).toBe(403);
    const unsigned = await t.app.inject({ method: 'POST', url: `/v1/authenticator/challenges/${b.body.id}/answer`, payload: { device_id: device.id, decision: 'approve', number: String(b.body.number), timestamp: t.clock.ms(), signature: '' } });
    expect(unsigned.statusCode).toBe(403);
    expect(await status(b.body.id)).toMatchObject({ status: 'pending' });
    // The signed approval of A cannot be turned into another decision either, and works once.
    expect((await device.answer(a.body.id, 'approve', String(a.body.number))).body.status).toBe('approved');
    expect((await device.answer(a.body.id, 'approve', String(a.body.number))).status).toBe(409);
  });

  it('PUSH-01: another user’s device cannot see or answer a request', async () => {
    const alice = await pushUser();
    const mallory = await pushUser();
    const request = await push(alice.username);
    expect((await mallory.device.pending()).body.requests).toEqual([]);
    expect((await mallory.device.answer(request.body.id, 'approve', String(request.body.number))).status).toBe(404);
    expect((await alice.device.pending()).body.requests.map((r: { id: string }) => r.id)).toEqual([request.body.id]);
  });

  it('PUSH-01: an answer after the request expired (60 s) is refused and the request reads expired', async () => {
    const { username, device } = await pushUser();
    const request = await push(username);
    t.clock.advance(61_000);
    try {
      expect((await device.answer(request.body.id, 'approve', String(request.body.number))).status).toBe(409);
      expect(await status(request.body.id)).toMatchObject({ status: 'expired' });
    } finally {
      t.clock.advance(-61_000);
    }
  });

  it('PUSH-02: the 4th push in 5 minutes is refused with 429 and never reaches the device; a denied push counts', async () => {
    const { username, device } = await pushUser();
    const first = await push(username);
    await device.answer(first.body.id, 'deny');
    await push(username);
    await push(username);
    const fourth = await t.app.inject({ method: 'POST', url: '/v1/challenges', headers: { authorization: `Bearer ${t.appKey}` }, payload: { username, method: 'push' } });
    expect(fourth.statusCode).toBe(429);
    expect(Number(fourth.headers['retry-after'])).toBeGreaterThan(0);
    expect((await device.pending()).body.requests).toHaveLength(2);
  });

  it('PUSH-03: the store holds the device’s public key only; a request signed by another key is refused (401)', async () => {
    const { device } = await pushUser();
    const row = await t.services.db.selectFrom('push_devices').selectAll().where('id', '=', device.id).executeTakeFirstOrThrow();
    expect(row.public_key).toBe(device.publicKey);
    const privateDer = device.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
    const dump = JSON.stringify(await t.services.db.selectFrom('push_devices').selectAll().execute());
    expect(dump).not.toContain(privateDer.slice(40, 80));
    const forged = await t.app.inject({ method: 'GET', url: '/v1/authenticator/pending', headers: { authorization: `Device ${device.id}.${t.clock.ms()}.${'A'.repeat(86)}` } });
    expect(forged.statusCode).toBe(401);
  });

  it('PUSH-03: an activation code works once, for 10 minutes', async () => {
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'once@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    const started = await t.admin('POST', '/v1/admin/users/once@contoso.com/push/activation?tenant=default');
    const code = new URL(started.body.activation_url).hash.replace('#activate=', '') ?? '';
    expect(Buffer.from(code, 'base64url').length * 8).toBeGreaterThanOrEqual(112);
    const activate = () => t.app.inject({ method: 'POST', url: '/v1/authenticator/activate', payload: { code, public_key: newKeyPair().publicKey, name: 'phone' } });
    expect((await activate()).statusCode).toBe(201);
    expect((await activate()).statusCode).toBe(404);
    const late = await t.admin('POST', '/v1/admin/users/once@contoso.com/push/activation?tenant=default');
    t.clock.advance(10 * 60_000 + 1000);
    try {
      const lateCode = new URL(late.body.activation_url).hash.replace('#activate=', '') ?? '';
      expect((await t.app.inject({ method: 'POST', url: '/v1/authenticator/activate', payload: { code: lateCode, public_key: newKeyPair().publicKey, name: 'phone' } })).statusCode).toBe(404);
    } finally {
      t.clock.advance(-(10 * 60_000 + 1000));
    }
    const stored = JSON.stringify(await t.services.db.selectFrom('push_activations').selectAll().execute());
    expect(stored).not.toContain(code);
    // LOG-01: the code travels in the link's fragment, which browsers never send, and is never logged.
    expect(started.body.activation_url).toContain('/authenticator#activate=');
    expect((await t.app.inject({ method: 'GET', url: '/authenticator' })).statusCode).toBe(302);
    expect((await t.app.inject({ method: 'GET', url: '/authenticator/' })).statusCode).toBe(200);
    expect(t.logs.join('\n')).not.toContain(code);
    const badKey = await t.app.inject({ method: 'POST', url: '/v1/authenticator/activate', payload: { code: 'x'.repeat(22), public_key: 'not a key', name: 'phone' } });
    expect(badKey.json().error.message).toMatch(/^public_key: /);
  });

  it('PUSH-04: deny and report fraud blocks the user (preauth fraud_block), is audited, and unblocking restores MFA', async () => {
    const { username, device } = await pushUser();
    const request = await push(username, { context: { app: 'Payroll', ip: '198.51.100.20', event: { title: 'Approve payment of €500 to ACME?' } } });
    const pending = (await device.pending()).body.requests[0];
    expect(pending).toMatchObject({ id: request.body.id, application: 'Payroll', ip: '198.51.100.20', event: { title: 'Approve payment of €500 to ACME?', detail: null }, number_required: true });
    expect((await device.answer(request.body.id, 'fraud')).body.status).toBe('fraud');
    expect((await t.api('POST', '/v1/preauth', { username })).body).toMatchObject({ result: 'deny', reason: 'fraud_block' });
    const actions = (await t.admin('GET', '/v1/admin/audit?tenant=default&limit=10')).body.records.map((r: { action: string }) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['fraud.reported', 'user.blocked']));
    expect((await t.admin('POST', `/v1/admin/users/${username}/unblock?tenant=default`)).status).toBe(200);
    expect((await t.api('POST', '/v1/preauth', { username })).body.methods).toEqual([{ id: `push:${device.id}`, type: 'push', label: 'Push to test phone', default: false }]);
  });

  it('approve-only push exists only behind the tenant setting push_approve_only', async () => {
    const { username, device } = await pushUser();
    await t.admin('PATCH', '/v1/admin/settings?tenant=default', { push_approve_only: true });
    try {
      const request = await push(username);
      expect(request.body.number).toBeUndefined();
      expect((await device.pending()).body.requests[0].number_required).toBe(false);
      expect((await device.answer(request.body.id, 'approve')).body.status).toBe('approved');
    } finally {
      await t.admin('PATCH', '/v1/admin/settings?tenant=default', { push_approve_only: false });
    }
  });

  it('a caller waiting on the push wakes approved; 50 concurrent signed approvals: exactly one wins', async () => {
    const { username, device } = await pushUser();
    const request = await push(username);
    const waiting = t.api('GET', `/v1/challenges/${request.body.id}?wait=20`);
    const answers = await Promise.all(Array.from({ length: 50 }, () => device.answer(request.body.id, 'approve', String(request.body.number))));
    expect(answers.filter((a) => a.status === 200 && a.body.status === 'approved')).toHaveLength(1);
    expect((await waiting).body).toMatchObject({ status: 'approved', number: request.body.number });
  });

  it('PIN mode: approving also needs the user’s PIN; a wrong PIN denies and counts towards the lockout', async () => {
    const { username, device } = await pushUser();
    expect((await t.admin('PUT', `/v1/admin/users/${username}/pin?tenant=default`, { pin: '2580' })).status).toBe(204);
    await t.admin('PATCH', '/v1/admin/settings?tenant=default', { push_pin_mode: true, push_limit_per_5_minutes: 10 });
    try {
      const first = await push(username);
      expect((await device.pending()).body.requests[0]).toMatchObject({ id: first.body.id, number_required: true, pin_required: true });
      expect((await device.answer(first.body.id, 'approve', String(first.body.number))).body).toEqual({ id: first.body.id, status: 'denied', reason: 'wrong_pin' });
      expect(await status(first.body.id)).toMatchObject({ status: 'denied', reason: 'wrong_pin' });
      const user = await t.services.db.selectFrom('users').select('failed_count').where('username', '=', username).executeTakeFirstOrThrow();
      expect(Number(user.failed_count)).toBe(1);
      const third = await push(username);
      const timestamp = t.clock.ms();
      const number = String(third.body.number);
      const answer = await t.app.inject({
        method: 'POST',
        url: `/v1/authenticator/challenges/${third.body.id}/answer`,
        payload: { device_id: device.id, decision: 'approve', number, pin: '2580', timestamp, signature: signText(device.privateKey, pushAnswerMessage(third.body.id, 'approve', number, timestamp)) },
      });
      expect(answer.json()).toMatchObject({ status: 'approved' });
    } finally {
      await t.admin('PATCH', '/v1/admin/settings?tenant=default', { push_pin_mode: false, push_limit_per_5_minutes: 3 });
    }
  });
});

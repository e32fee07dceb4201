import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/harness.js';

/**
 * Attacks on the phone methods (SECURITY.md, out-of-band rows), through the Auth API and the
 * local outbox. The random source is injectable: one test fixes it to see that codes come from it.
 */
describe('phone and text message security', () => {
  let t: TestApp;
  let fixed: Buffer | undefined;
  let n = 0;
  async function phoneUser(number?: string): Promise<{ username: string; number: string }> {
    n++;
    const username = `sec${n}@contoso.com`;
    const phone = number ?? `+1425555${String(2000 + n).padStart(4, '0')}`;
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, phone, mfa_state: 'enforced' })).status).toBe(201);
    return { username, number: phone };
  }
  const textFor = async (challengeId: string) => {
    const messages = (await t.admin('GET', '/v1/admin/outbox?limit=500')).body.messages as { id: string; text: string; challenge_id: string }[];
    const message = messages.find((m) => m.challenge_id === challengeId);
    if (message === undefined) throw new Error('no message');
    return { ...message, code: /^(\d{6}) is your/.exec(message.text)?.[1] ?? /reply (\d{6})/.exec(message.text)?.[1] ?? '' };
  };
  const outboxCount = async () => ((await t.admin('GET', '/v1/admin/outbox?limit=500')).body.messages as unknown[]).length;

  beforeAll(async () => {
    t = await createTestApp({ random: (bytes) => (fixed !== undefined && bytes === 4 ? fixed : randomBytes(bytes)) });
  });
  afterAll(async () => {
    await t.close();
  });

  it('OOB-03: the text code is 6 digits drawn from the injected random source', async () => {
    const { username } = await phoneUser();
    fixed = Buffer.alloc(4);
    fixed.writeUInt32BE(4_000_123_456); // 4000123456 mod 10^6 = 123456
    try {
      const created = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
      expect((await textFor(created.body.id)).code).toBe('123456');
    } finally {
      fixed = undefined;
    }
    const codes = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const c = await t.api('POST', '/v1/challenges', { username: (await phoneUser()).username, method: 'sms' });
      codes.add((await textFor(c.body.id)).code);
    }
    for (const code of codes) expect(code).toMatch(/^\d{6}$/);
  });

  it('OOB-04: the store holds no plaintext code: the challenge keeps a keyed hash, the outbox text is sealed', async () => {
    const { username } = await phoneUser();
    const created = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
    const { code } = await textFor(created.body.id);
    const row = await t.services.db.selectFrom('challenges').selectAll().where('id', '=', created.body.id).executeTakeFirstOrThrow();
    expect(row.code_hash).toMatch(/^[0-9a-f]{64}$/);
    const dump = JSON.stringify([row, await t.services.db.selectFrom('outbox').selectAll().execute(), await t.services.db.selectFrom('telephony_log').selectAll().execute(), await t.services.db.selectFrom('audit_events').selectAll().execute()]);
    expect(dump).not.toContain(code);
    expect(t.logs.join('\n')).not.toContain(code);
  });

  it('OOB-02: a code is single use and bound to its challenge: A’s code fails on B, and reusing it on A fails', async () => {
    const { username } = await phoneUser();
    const a = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
    const b = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
    const codeA = (await textFor(a.body.id)).code;
    expect((await t.api('POST', `/v1/challenges/${b.body.id}/answer`, { code: codeA })).body).toMatchObject({ status: 'sent', reason: 'invalid_code' });
    expect((await t.api('POST', `/v1/challenges/${a.body.id}/answer`, { code: codeA })).body.status).toBe('approved');
    expect((await t.api('POST', `/v1/challenges/${a.body.id}/answer`, { code: codeA })).status).toBe(409);
  });

  it('OOB-02: 50 concurrent answers with the right code: exactly one approves', async () => {
    const { username } = await phoneUser();
    const created = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
    const { code } = await textFor(created.body.id);
    const answers = await Promise.all(Array.from({ length: 50 }, () => t.api('POST', `/v1/challenges/${created.body.id}/answer`, { code })));
    expect(answers.filter((a) => a.status === 200 && a.body.status === 'approved')).toHaveLength(1);
  });

  it('OOB-01: a text code is refused 10 minutes and 1 second after it was sent', async () => {
    const { username } = await phoneUser();
    const created = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
    const { code } = await textFor(created.body.id);
    t.clock.advance(10 * 60_000 + 1000);
    try {
      const late = await t.api('POST', `/v1/challenges/${created.body.id}/answer`, { code });
      expect(late.status).toBe(409);
      expect((await t.api('GET', `/v1/challenges/${created.body.id}`)).body.status).toBe('expired');
    } finally {
      t.clock.advance(-(10 * 60_000 + 1000));
    }
  });

  it('RL-03: sending a new code does not reset the failure count: the next failure locks', async () => {
    await t.admin('PATCH', '/v1/admin/settings?tenant=default', { lockout_threshold: 3 });
    try {
      const { username } = await phoneUser();
      const first = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
      for (let i = 0; i < 2; i++) expect((await t.api('POST', `/v1/challenges/${first.body.id}/answer`, { code: '000000' })).body.reason).toBe('invalid_code');
      const resent = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
      const { code } = await textFor(resent.body.id);
      expect((await t.api('POST', `/v1/challenges/${resent.body.id}/answer`, { code: '000000' })).body.reason).toBe('invalid_code');
      // Locked now: even the right code is refused.
      expect((await t.api('POST', `/v1/challenges/${resent.body.id}/answer`, { code })).body).toMatchObject({ status: 'denied', reason: 'locked_out' });
    } finally {
      await t.admin('PATCH', '/v1/admin/settings?tenant=default', { lockout_threshold: 10 });
    }
  });

  it('OOB-07: the 4th text to one number within 10 minutes is refused with 429 and Retry-After, before the provider', async () => {
    const shared = '+14255559876';
    const { username } = await phoneUser(shared);
    const before = await outboxCount();
    for (let i = 0; i < 3; i++) expect((await t.api('POST', '/v1/challenges', { username, method: 'sms' })).status).toBe(201);
    const fourth = await t.app.inject({ method: 'POST', url: '/v1/challenges', headers: { authorization: `Bearer ${t.appKey}` }, payload: { username, method: 'sms' } });
    expect(fourth.statusCode).toBe(429);
    expect(Number(fourth.headers['retry-after'])).toBeGreaterThan(0);
    expect(fourth.json().error.message).toContain('+1 XXX-XXX-9876');
    expect(await outboxCount()).toBe(before + 3);
  });

  it('OOB-07: a number outside the country allow-list is refused and nothing is sent', async () => {
    const { username } = await phoneUser();
    await t.admin('PATCH', '/v1/admin/settings?tenant=default', { phone_countries: ['GB', 'FR'] });
    try {
      const before = await outboxCount();
      const refused = await t.api('POST', '/v1/challenges', { username, method: 'voice' });
      expect(refused.status).toBe(403);
      expect(refused.body.error.message).toContain('US');
      expect(await outboxCount()).toBe(before);
    } finally {
      await t.admin('PATCH', '/v1/admin/settings?tenant=default', { phone_countries: [] });
    }
  });

  it('PUSH-04 (voice): 0# then 1 reports fraud, blocks the user for 90 days (preauth: fraud_block), audits it; unblock restores', async () => {
    const { username } = await phoneUser();
    const created = await t.api('POST', '/v1/challenges', { username, method: 'voice', context: { ip: '198.51.100.9' } });
    const call = await textFor(created.body.id);
    expect((await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '0#' })).body.text).toContain('Press 1 to confirm');
    await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '1' });
    expect((await t.api('GET', `/v1/challenges/${created.body.id}`)).body.status).toBe('fraud');
    expect((await t.api('POST', '/v1/preauth', { username })).body).toMatchObject({ result: 'deny', reason: 'fraud_block' });
    const user = await t.services.db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirstOrThrow();
    expect(Number(user.blocked_until) - t.clock.ms()).toBe(90 * 86_400_000);
    const actions = (await t.admin('GET', '/v1/admin/audit?tenant=default&limit=20')).body.records.map((r: { action: string }) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['fraud.reported', 'user.blocked']));
    expect((await t.admin('POST', `/v1/admin/users/${username}/unblock?tenant=default`)).status).toBe(200);
    expect((await t.api('POST', '/v1/preauth', { username })).body.result).toBe('challenge');
  });

  it('PUSH-04 (text): replying the fraud code to a two-way text reports fraud', async () => {
    const { username } = await phoneUser();
    await t.admin('PATCH', '/v1/admin/settings?tenant=default', { sms_mode: 'two_way', fraud_block_days: 0 });
    try {
      const created = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
      const text = await textFor(created.body.id);
      expect((await t.admin('POST', `/v1/admin/outbox/${text.id}/reply`, { text: '0' })).body.result).toBe('fraud');
      const user = await t.services.db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirstOrThrow();
      expect(user).toMatchObject({ status: 'blocked', blocked_reason: 'fraud', blocked_until: null });
    } finally {
      await t.admin('PATCH', '/v1/admin/settings?tenant=default', { sms_mode: 'one_way', fraud_block_days: 90 });
    }
  });

  it('RL-01: a locked-out user gets no text or call (429 with Retry-After, nothing sent); wrong PINs count towards the lockout', async () => {
    await t.admin('PATCH', '/v1/admin/settings?tenant=default', { lockout_threshold: 2, voice_mode: 'pin' });
    try {
      const { username } = await phoneUser();
      expect((await t.admin('PUT', `/v1/admin/users/${username}/pin?tenant=default`, { pin: '2580' })).status).toBe(204);
      const call = await textFor((await t.api('POST', '/v1/challenges', { username, method: 'voice' })).body.id);
      await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '1111#' });
      await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '0000#' });
      const call2 = await textFor((await t.api('POST', '/v1/challenges', { username, method: 'voice' })).body.id);
      await t.admin('POST', `/v1/admin/outbox/${call2.id}/press`, { digits: '1111#' });
      await t.admin('POST', `/v1/admin/outbox/${call2.id}/press`, { digits: '0000#' });
      expect((await t.api('POST', '/v1/preauth', { username })).body).toMatchObject({ result: 'deny', reason: 'locked_out' });
      const before = await outboxCount();
      const refused = await t.app.inject({ method: 'POST', url: '/v1/challenges', headers: { authorization: `Bearer ${t.appKey}` }, payload: { username, method: 'sms' } });
      expect(refused.statusCode).toBe(429);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      expect(await outboxCount()).toBe(before);
    } finally {
      await t.admin('PATCH', '/v1/admin/settings?tenant=default', { lockout_threshold: 10, voice_mode: 'press' });
    }
  });
});

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

  it('RL-01: every wrong PIN on a call counts towards the lockout; a locked-out user gets no text or call (429 with Retry-After, nothing sent)', async () => {
    await t.admin('PATCH', '/v1/admin/settings?tenant=default', { lockout_threshold: 2, voice_mode: 'pin' });
    try {
      const { username } = await phoneUser();
      expect((await t.admin('PUT', `/v1/admin/users/${username}/pin?tenant=default`, { pin: '2580' })).status).toBe(204);
      const created = await t.api('POST', '/v1/challenges', { username, method: 'voice' });
      const call = await textFor(created.body.id);
      // Each wrong PIN is a failed verification: the second one locks, and the call ends.
      expect((await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '1111#' })).body.text).toContain('try again');
      expect((await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '0000#' })).body.status).toBe('completed');
      expect((await t.api('GET', `/v1/challenges/${created.body.id}`)).body).toMatchObject({ status: 'denied', reason: 'wrong_pin' });
      const actions = (await t.admin('GET', '/v1/admin/audit?tenant=default&limit=10')).body.records.map((r: { action: string }) => r.action);
      expect(actions).toEqual(expect.arrayContaining(['verification.failed', 'user.locked_out']));
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

  it('PUSH-04: a fraud report on one call denies the user’s other open challenges: # on the second call does not approve', async () => {
    const { username } = await phoneUser();
    const first = await t.api('POST', '/v1/challenges', { username, method: 'voice' });
    const second = await t.api('POST', '/v1/challenges', { username, method: 'voice' });
    const call1 = await textFor(first.body.id);
    const call2 = await textFor(second.body.id);
    await t.admin('POST', `/v1/admin/outbox/${call1.id}/press`, { digits: '0#' });
    await t.admin('POST', `/v1/admin/outbox/${call1.id}/press`, { digits: '1' });
    expect((await t.api('GET', `/v1/challenges/${second.body.id}`)).body).toMatchObject({ status: 'denied', reason: 'blocked' });
    expect((await t.admin('POST', `/v1/admin/outbox/${call2.id}/press`, { digits: '#' })).body.text).toContain('has ended');
    expect((await t.api('GET', `/v1/challenges/${second.body.id}`)).body.status).toBe('denied');
  });

  it('OOB-07: premium-rate numbers are never texted or called', async () => {
    const { username } = await phoneUser('+19005550100');
    const before = await outboxCount();
    const refused = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toContain('premium-rate');
    expect(await outboxCount()).toBe(before);
  });

  it('TEN: a reply from the outbox answers only its own text’s challenge, never another tenant’s for the same number', async () => {
    const shared = '+14255551777';
    await t.admin('POST', '/v1/admin/tenants', { name: 'other' });
    await t.admin('PATCH', '/v1/admin/settings?tenant=other', { sms_mode: 'two_way' });
    expect((await t.admin('POST', '/v1/admin/users?tenant=other', { username: 'victim@other.com', phone: shared, mfa_state: 'enforced' })).status).toBe(201);
    const otherApp = (await t.admin('POST', '/v1/admin/applications?tenant=other', { name: 'other app' })).body.api_key;
    const victim = await t.app.inject({ method: 'POST', url: '/v1/challenges', headers: { authorization: `Bearer ${otherApp}` }, payload: { username: 'victim@other.com', method: 'sms' } });
    expect(victim.statusCode).toBe(201);
    // The attacker's tenant registers the same number and sends it a text of its own.
    const { username } = await phoneUser(shared);
    const own = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
    const ownText = await textFor(own.body.id);
    const tenantKey = (await t.admin('POST', '/v1/admin/admin-keys?tenant=default', { name: 'default only' })).body.api_key;
    const reply = await t.app.inject({ method: 'POST', url: `/v1/admin/outbox/${ownText.id}/reply`, headers: { authorization: `Bearer ${tenantKey}` }, payload: { text: 'Y' } });
    expect(reply.json().result).toBe('ignored');
    const after = await t.app.inject({ method: 'GET', url: `/v1/challenges/${victim.json().id}`, headers: { authorization: `Bearer ${otherApp}` } });
    expect(after.json().status).toBe('sent');
  });
});

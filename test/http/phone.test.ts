import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/harness.js';

/**
 * Phone calls and text messages end to end through the local outbox (the default provider):
 * a user with a pre-registered number, challenges created through the Auth API, and the phone's
 * side played with the admin outbox API — as `countersign outbox` does.
 */
describe('phone call and text message challenges (outbox)', () => {
  let t: TestApp;
  let n = 0;
  /** A fresh user with a mobile number; numbers differ so per-number limits do not meet. */
  async function phoneUser(extra: Record<string, unknown> = {}): Promise<{ username: string; number: string }> {
    n++;
    const username = `phone${n}@contoso.com`;
    const number = `+1425555${String(1000 + n).padStart(4, '0')}`;
    const created = await t.admin('POST', '/v1/admin/users?tenant=default', { username, phone: number, mfa_state: 'enforced', ...extra });
    expect(created.status).toBe(201);
    return { username, number };
  }
  const outbox = async () => (await t.admin('GET', '/v1/admin/outbox')).body.messages as { id: string; kind: string; to: string; text: string; status: string; challenge_id: string }[];
  const messageFor = async (challengeId: string) => {
    const found = (await outbox()).find((m) => m.challenge_id === challengeId);
    if (found === undefined) throw new Error(`no outbox message for ${challengeId}`);
    return found;
  };
  const settings = (change: Record<string, unknown>) => t.admin('PATCH', '/v1/admin/settings?tenant=default', change);

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('preauth lists a pre-registered number as text and call methods, masked, never the default', async () => {
    const { username } = await phoneUser();
    const pre = await t.api('POST', '/v1/preauth', { username });
    expect(pre.body.result).toBe('challenge');
    expect(pre.body.methods).toEqual([
      { id: 'sms:mobile', type: 'sms', label: 'Text +1 XXX-XXX-1001', default: false },
      { id: 'voice:mobile', type: 'voice', label: 'Call +1 XXX-XXX-1001', default: false },
    ]);
  });

  it('a call: the outbox rings, # approves, and a caller waiting on the challenge wakes approved', async () => {
    const { username, number } = await phoneUser();
    const created = await t.api('POST', '/v1/challenges', { username, method: 'voice', context: { app: 'VPN', ip: '203.0.113.7' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: 'calling', type: 'voice' });
    const call = await messageFor(created.body.id);
    expect(call).toMatchObject({ kind: 'call', to: number, status: 'ringing' });
    expect(call.text).toContain('press the pound key');
    const waiting = t.api('GET', `/v1/challenges/${created.body.id}?wait=20`);
    const pressed = await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '#' });
    expect(pressed.status).toBe(200);
    expect(pressed.body.status).toBe('completed');
    expect(pressed.body.text).toContain('You are signed in');
    expect((await waiting).body).toMatchObject({ id: created.body.id, status: 'approved' });
    // Once decided, more keys change nothing.
    expect((await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '#' })).status).toBe(409);
    const log = await t.services.db.selectFrom('telephony_log').selectAll().where('challenge_id', '=', created.body.id).execute();
    expect(log).toMatchObject([{ kind: 'call', provider: 'outbox', number_masked: `+1 XXX-XXX-${number.slice(-4)}`, status: 'completed', units: 1 }]);
  });

  it('a wrong key gets one retry, then the call ends denied; silence ends it failed (timeout)', async () => {
    const { username } = await phoneUser();
    const first = await t.api('POST', '/v1/challenges', { username, method: 'voice:mobile' });
    const call = await messageFor(first.body.id);
    expect((await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '5#' })).body.text).toContain('try again');
    await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '7#' });
    expect((await t.api('GET', `/v1/challenges/${first.body.id}`)).body).toMatchObject({ status: 'denied', reason: 'wrong_key' });

    const second = await t.api('POST', '/v1/challenges', { username, method: 'voice' });
    const quiet = await messageFor(second.body.id);
    await t.admin('POST', `/v1/admin/outbox/${quiet.id}/press`, { digits: '' });
    await t.admin('POST', `/v1/admin/outbox/${quiet.id}/press`, { digits: '' });
    expect((await t.api('GET', `/v1/challenges/${second.body.id}`)).body).toMatchObject({ status: 'failed', reason: 'timeout' });
  });

  it('PIN mode: the PIN then # approves; a wrong PIN twice denies; weak PINs are refused naming pin', async () => {
    const { username } = await phoneUser();
    expect((await t.admin('PUT', `/v1/admin/users/${username}/pin?tenant=default`, { pin: '1234' })).body.error.message).toMatch(/^pin: .*sequential/);
    expect((await t.admin('PUT', `/v1/admin/users/${username}/pin?tenant=default`, { pin: '5550' })).body.error.message).toMatch(/^pin: .*repeated/);
    expect((await t.admin('PUT', `/v1/admin/users/${username}/pin?tenant=default`, { pin: '12a4' })).body.error.message).toMatch(/^pin: /);
    expect((await t.admin('PUT', `/v1/admin/users/${username}/pin?tenant=default`, { pin: '2580' })).status).toBe(204);
    const hash = await t.services.db.selectFrom('users').select('pin_hash').where('username', '=', username).executeTakeFirstOrThrow();
    expect(hash.pin_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    await settings({ voice_mode: 'pin' });
    try {
      const ok = await t.api('POST', '/v1/challenges', { username, method: 'voice' });
      const call = await messageFor(ok.body.id);
      expect(call.text).toContain('Enter your PIN');
      await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '2581#' });
      await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '2580#' });
      expect((await t.api('GET', `/v1/challenges/${ok.body.id}`)).body.status).toBe('approved');

      const bad = await t.api('POST', '/v1/challenges', { username, method: 'voice' });
      const badCall = await messageFor(bad.body.id);
      await t.admin('POST', `/v1/admin/outbox/${badCall.id}/press`, { digits: '1111#' });
      await t.admin('POST', `/v1/admin/outbox/${badCall.id}/press`, { digits: '0000#' });
      expect((await t.api('GET', `/v1/challenges/${bad.body.id}`)).body).toMatchObject({ status: 'denied', reason: 'wrong_pin' });
    } finally {
      await settings({ voice_mode: 'press' });
    }
  });

  it('a call that reads a code out: the code typed into the application approves', async () => {
    const { username } = await phoneUser();
    await settings({ voice_mode: 'code' });
    try {
      const created = await t.api('POST', '/v1/challenges', { username, method: 'voice' });
      const call = await messageFor(created.body.id);
      const spoken = /code is ((?:\d, ){5}\d)/.exec(call.text)?.[1];
      expect(spoken).toBeDefined();
      const code = (spoken ?? '').replaceAll(', ', '');
      const answered = await t.api('POST', `/v1/challenges/${created.body.id}/answer`, { code });
      expect(answered.body).toMatchObject({ status: 'approved' });
    } finally {
      await settings({ voice_mode: 'press' });
    }
  });

  it('a one-way text: the code from the text approves once; a wrong code is refused as invalid_code', async () => {
    const { username, number } = await phoneUser();
    const created = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
    expect(created.body).toMatchObject({ status: 'sent', type: 'sms' });
    const text = await messageFor(created.body.id);
    expect(text).toMatchObject({ kind: 'sms', to: number, status: 'delivered' });
    const code = /^(\d{6}) is your default verification code\. It expires in 10 minutes/.exec(text.text)?.[1] ?? '';
    expect(code).toMatch(/^\d{6}$/);
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    expect((await t.api('POST', `/v1/challenges/${created.body.id}/answer`, { code: wrong })).body).toMatchObject({ status: 'sent', reason: 'invalid_code' });
    expect((await t.api('POST', `/v1/challenges/${created.body.id}/answer`, { code })).body).toMatchObject({ status: 'approved' });
    expect((await t.api('POST', `/v1/challenges/${created.body.id}/answer`, { code })).status).toBe(409);
    expect((await t.api('POST', `/v1/challenges/${created.body.id}/answer`, { code: 'abc' })).status).toBe(409);
  });

  it('a two-way text: replying Y approves and wakes the waiting caller; another reply denies', async () => {
    const { username } = await phoneUser();
    await settings({ sms_mode: 'two_way' });
    try {
      const created = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
      const text = await messageFor(created.body.id);
      expect(text.text).toMatch(/reply \d{6} \(or Y\) to approve\. If this was not you, reply 0\./);
      const waiting = t.api('GET', `/v1/challenges/${created.body.id}?wait=20`);
      const replied = await t.admin('POST', `/v1/admin/outbox/${text.id}/reply`, { text: 'y' });
      expect(replied.body.result).toBe('approved');
      expect((await waiting).body.status).toBe('approved');

      const second = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
      const other = await messageFor(second.body.id);
      expect((await t.admin('POST', `/v1/admin/outbox/${other.id}/reply`, { text: 'maybe' })).body.result).toBe('denied');
      expect((await t.api('GET', `/v1/challenges/${second.body.id}`)).body).toMatchObject({ status: 'denied', reason: 'wrong_reply' });
      // Nothing open any more: a late reply is ignored.
      expect((await t.admin('POST', `/v1/admin/outbox/${other.id}/reply`, { text: 'Y' })).body.result).toBe('ignored');
    } finally {
      await settings({ sms_mode: 'one_way' });
    }
  });

  it('bad input: malformed keys, pressing on a text, replying to a call and an unknown message are refused clearly', async () => {
    const { username } = await phoneUser();
    const call = await messageFor((await t.api('POST', '/v1/challenges', { username, method: 'voice' })).body.id);
    const text = await messageFor((await t.api('POST', '/v1/challenges', { username, method: 'sms' })).body.id);
    const malformed = await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '12ab' });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.message).toMatch(/^digits: /);
    expect((await t.admin('POST', `/v1/admin/outbox/${text.id}/press`, { digits: '#' })).status).toBe(409);
    expect((await t.admin('POST', `/v1/admin/outbox/${call.id}/reply`, { text: 'Y' })).status).toBe(409);
    expect((await t.admin('GET', '/v1/admin/outbox/00000000-0000-0000-0000-000000000000')).status).toBe(404);
    // The call is still ringing and answerable after the refusals.
    expect((await t.admin('POST', `/v1/admin/outbox/${call.id}/press`, { digits: '#' })).body.status).toBe('completed');
  });

  it('a user without a number has no phone methods; an unknown method id is named', async () => {
    const created = await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'nophone@contoso.com', mfa_state: 'enforced' });
    expect(created.status).toBe(201);
    expect((await t.api('POST', '/v1/challenges', { username: 'nophone@contoso.com', method: 'sms' })).status).toBe(404);
    const { username } = await phoneUser();
    const unknown = await t.api('POST', '/v1/challenges', { username, method: 'voice:office' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('sms:mobile, voice:mobile');
  });

  it('OOB-05 proof of a number: a new number is unusable until the code sent to it is read back', async () => {
    const created = await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'prove@contoso.com', mfa_state: 'enforced' });
    expect(created.status).toBe(201);
    const started = await t.admin('POST', '/v1/admin/users/prove@contoso.com/phones/mobile/verify?tenant=default', { number: '(425) 555-7788' });
    expect(started.status).toBe(201);
    expect(started.body).toMatchObject({ type: 'mobile', number: '+14255557788', status: 'sent' });
    // Not usable yet: no phone methods, and the admin view says unverified.
    expect((await t.api('POST', '/v1/preauth', { username: 'prove@contoso.com' })).body.result).toBe('enroll');
    expect((await t.admin('GET', '/v1/admin/users/prove@contoso.com?tenant=default')).body.phones).toEqual([{ type: 'mobile', number: '+14255557788', verified: false }]);
    const text = await messageFor(started.body.challenge_id);
    expect(text.text).toMatch(/^\d{6} is your default code to verify this phone number/);
    const code = text.text.slice(0, 6);
    const confirm = (c: string) => t.admin('POST', '/v1/admin/users/prove@contoso.com/phones/mobile/verify/confirm?tenant=default', { code: c });
    expect((await confirm(code === '000000' ? '111111' : '000000')).body).toMatchObject({ verified: false, reason: 'invalid_code' });
    expect((await confirm(code)).body).toMatchObject({ status: 'approved', verified: true });
    expect((await t.admin('GET', '/v1/admin/users/prove@contoso.com?tenant=default')).body.phones).toEqual([{ type: 'mobile', number: '+14255557788', verified: true }]);
    expect((await t.api('POST', '/v1/preauth', { username: 'prove@contoso.com' })).body.methods.map((m: { id: string }) => m.id)).toEqual(['sms:mobile', 'voice:mobile']);
    // Proving it again is refused; an office number is proven by a call that reads the code.
    expect((await t.admin('POST', '/v1/admin/users/prove@contoso.com/phones/mobile/verify?tenant=default', { number: '+14255557788' })).status).toBe(409);
    const office = await t.admin('POST', '/v1/admin/users/prove@contoso.com/phones/office/verify?tenant=default', { number: '+14255557789' });
    expect(office.body.status).toBe('calling');
    expect((await messageFor(office.body.challenge_id)).text).toMatch(/Your verification code is (\d, ){5}\d/);
    expect((await t.admin('POST', '/v1/admin/users/prove@contoso.com/phones/pager/verify?tenant=default', { number: '+14255557789' })).body.error.message).toMatch(/^type: must be one of mobile, office, alternate/);
    expect((await t.admin('POST', '/v1/admin/users/prove@contoso.com/phones/office/verify?tenant=default', { number: 'call me' })).body.error.message).toMatch(/^number: /);
  });

  it('greetings: a tenant’s text replaces the built-in prompt; an uploaded audio file is served for the provider; bad input is refused', async () => {
    const set = await t.admin('PUT', '/v1/admin/greetings/en-US/greeting?tenant=default', { text: 'Contoso sign-in. Press pound to approve.' });
    expect(set.body).toMatchObject({ language: 'en-US', kind: 'greeting', audio: false });
    const { username } = await phoneUser();
    const call = await messageFor((await t.api('POST', '/v1/challenges', { username, method: 'voice' })).body.id);
    expect(call.text).toBe('Contoso sign-in. Press pound to approve.');
    const wav = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WAVEfmt '), Buffer.alloc(64)]);
    const upload = await t.app.inject({ method: 'PUT', url: '/v1/admin/greetings/en-US/success?tenant=default&text=Thanks', headers: { authorization: `Bearer ${t.adminKey}`, 'content-type': 'audio/wav' }, payload: wav });
    expect(upload.statusCode).toBe(200);
    expect(upload.json()).toMatchObject({ kind: 'success', audio: true, text: 'Thanks' });
    const row = await t.services.db.selectFrom('phone_greetings').select('id').where('kind', '=', 'success').executeTakeFirstOrThrow();
    const served = await t.app.inject({ method: 'GET', url: `/v1/telephony/audio/${row.id}` });
    expect(served.statusCode).toBe(200);
    expect(served.headers['content-type']).toBe('audio/wav');
    expect(served.rawPayload.equals(wav)).toBe(true);
    const notAudio = await t.app.inject({ method: 'PUT', url: '/v1/admin/greetings/en-US/retry?tenant=default', headers: { authorization: `Bearer ${t.adminKey}`, 'content-type': 'audio/mpeg' }, payload: Buffer.from('not audio at all') });
    expect(notAudio.json().error.message).toBe('audio: not an MP3 or WAV file');
    const big = await t.app.inject({ method: 'PUT', url: '/v1/admin/greetings/en-US/retry?tenant=default', headers: { authorization: `Bearer ${t.adminKey}`, 'content-type': 'audio/mpeg' }, payload: Buffer.concat([Buffer.from('ID3'), Buffer.alloc(1024 * 1024)]) });
    expect(big.statusCode).toBe(413);
    expect((await t.admin('PUT', '/v1/admin/greetings/english/greeting?tenant=default', { text: 'x' })).body.error.message).toMatch(/^language: /);
    expect((await t.admin('PUT', '/v1/admin/greetings/en-US/hello?tenant=default', { text: 'x' })).body.error.message).toMatch(/^kind: must be one of greeting, /);
    expect((await t.admin('PUT', '/v1/admin/greetings/en-US/code?tenant=default', { text: 'no code here' })).body.error.message).toContain('{code}');
    expect((await t.admin('GET', '/v1/admin/greetings?tenant=default')).body.greetings.map((g: { kind: string }) => g.kind)).toEqual(['greeting', 'success']);
    expect((await t.admin('DELETE', '/v1/admin/greetings/en-US/greeting?tenant=default')).status).toBe(204);
    expect((await t.admin('DELETE', '/v1/admin/greetings/en-US/greeting?tenant=default')).status).toBe(404);
  });

  it('the telephony log lists every text and call of the tenant with the number masked', async () => {
    const log = await t.admin('GET', '/v1/admin/telephony-log?tenant=default&limit=1000');
    expect(log.status).toBe(200);
    expect(log.body.entries.length).toBeGreaterThan(5);
    for (const entry of log.body.entries) expect(entry.number).toMatch(/^\+\d+ [X\d-]+$/);
    expect(JSON.stringify(log.body)).not.toMatch(/\+1425555\d{4}/);
    expect(log.body.entries[0]).toMatchObject({ provider: 'outbox', country: 'US', units: 1 });
    expect((await t.admin('GET', '/v1/admin/telephony-log?tenant=default&since=yesterday')).status).toBe(400);
  });

  it('OOB-01 proof of a number: a code read back after 10 minutes is refused and the number stays unverified', async () => {
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'late@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    const started = await t.admin('POST', '/v1/admin/users/late@contoso.com/phones/mobile/verify?tenant=default', { number: '+14255557790' });
    const code = (await messageFor(started.body.challenge_id)).text.slice(0, 6);
    t.clock.advance(10 * 60_000 + 1000);
    try {
      const late = await t.admin('POST', '/v1/admin/users/late@contoso.com/phones/mobile/verify/confirm?tenant=default', { code });
      expect(late.status).toBe(404);
      expect(late.body.error.message).toContain('10 minutes');
      expect((await t.admin('GET', '/v1/admin/users/late@contoso.com?tenant=default')).body.phones).toEqual([{ type: 'mobile', number: '+14255557790', verified: false }]);
    } finally {
      t.clock.advance(-(10 * 60_000 + 1000));
    }
  });
});

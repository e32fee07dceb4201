import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { twilioSignature } from '../../src/channels/twilio/signature.js';
import { createTestApp, type TestApp } from '../support/harness.js';

/**
 * The Twilio provider end to end: Countersign calls a local server that plays Twilio's REST API
 * (and records what it receives), and the test plays Twilio's side of the webhooks, signed as
 * Twilio signs them (X-Twilio-Signature over public_url + path + sorted form fields).
 */
const SID = `AC${'0123456789abcdef'.repeat(2)}`;
const TOKEN = 'twilio-auth-token-for-tests';
const PUBLIC = 'https://mfa.example.com';

describe('Twilio provider and webhooks', () => {
  let t: TestApp;
  let twilio: Server;
  const received: { path: string; form: URLSearchParams }[] = [];
  let n = 0;

  beforeAll(async () => {
    twilio = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      request.on('end', () => {
        received.push({ path: request.url ?? '', form: new URLSearchParams(body) });
        n++;
        response.writeHead(201, { 'content-type': 'application/json' });
        response.end(JSON.stringify(request.url?.endsWith('/Calls.json') ? { sid: `CA${n}`, status: 'queued' } : { sid: `SM${n}`, status: 'queued', num_segments: '1' }));
      });
    });
    await new Promise<void>((resolve) => twilio.listen(0, '127.0.0.1', resolve));
    const apiUrl = `http://127.0.0.1:${(twilio.address() as AddressInfo).port}`;
    t = await createTestApp({ config: { publicUrl: PUBLIC, telephony: { provider: 'twilio', twilio: { account_sid: SID, auth_token: TOKEN, from: '+15005550006', api_url: apiUrl } } } });
  });
  afterAll(async () => {
    await t.close();
    await new Promise((resolve) => twilio.close(resolve));
  });

  let users = 0;
  async function phoneUser(): Promise<{ username: string; number: string }> {
    users++;
    const username = `tw${users}@contoso.com`;
    const number = `+1206555${String(3000 + users)}`;
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, phone: number, mfa_state: 'enforced' })).status).toBe(201);
    return { username, number };
  }
  /** Posts a webhook as Twilio does: form-encoded, signed, maybe with an idempotency token. */
  async function webhook(path: string, form: Record<string, string>, options: { signature?: string; token?: string } = {}) {
    const signature = options.signature ?? twilioSignature(TOKEN, `${PUBLIC}${path}`, form);
    const response = await t.app.inject({
      method: 'POST',
      url: path,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature, ...(options.token === undefined ? {} : { 'i-twilio-idempotency-token': options.token }) },
      payload: new URLSearchParams(form).toString(),
    });
    return { status: response.statusCode, body: response.body, type: String(response.headers['content-type']) };
  }
  const challenge = async (id: string) => (await t.api('GET', `/v1/challenges/${id}`)).body;

  it('a call: Twilio is asked to call with our script URL; answering, then #, approves; the TwiML says so', async () => {
    const { username, number } = await phoneUser();
    const created = await t.api('POST', '/v1/challenges', { username, method: 'voice' });
    expect(created.body.status).toBe('calling');
    const call = received.at(-1);
    expect(call?.path).toBe(`/2010-04-01/Accounts/${SID}/Calls.json`);
    expect(call?.form.get('To')).toBe(number);
    expect(call?.form.get('From')).toBe('+15005550006');
    const url = call?.form.get('Url') ?? '';
    expect(url).toMatch(new RegExp(`^${PUBLIC}/v1/telephony/twilio/voice\\?ref=[0-9a-f-]{36}$`));
    const ref = new URL(url).searchParams.get('ref') ?? '';
    expect(call?.form.get('StatusCallback')).toBe(`${PUBLIC}/v1/telephony/twilio/status?ref=${ref}`);

    const answered = await webhook(`/v1/telephony/twilio/voice?ref=${ref}`, { CallSid: 'CA1', CallStatus: 'in-progress', To: number });
    expect(answered.status).toBe(200);
    expect(answered.type).toContain('text/xml');
    expect(answered.body).toContain(`action="${PUBLIC}/v1/telephony/twilio/voice/gather?ref=${ref}"`);
    expect(answered.body).toContain('press the pound key');
    expect((await challenge(created.body.id)).status).toBe('answered');

    const pressed = await webhook(`/v1/telephony/twilio/voice/gather?ref=${ref}`, { CallSid: 'CA1', Digits: '', FinishedOnKey: '#' }, { token: 'idem-1' });
    expect(pressed.body).toContain('You are signed in');
    expect(pressed.body).toContain('<Hangup/>');
    expect((await challenge(created.body.id)).status).toBe('approved');
    // The same webhook again (a retry, or a replay): handled once.
    const again = await webhook(`/v1/telephony/twilio/voice/gather?ref=${ref}`, { CallSid: 'CA1', Digits: '', FinishedOnKey: '#' }, { token: 'idem-1' });
    expect(again.body).not.toContain('signed in');
    expect(t.logs.some((l) => l.includes('already handled'))).toBe(true);
  });

  it('a webhook with a bad, missing or other-URL signature is refused with 403 and changes nothing', async () => {
    const { username } = await phoneUser();
    const created = await t.api('POST', '/v1/challenges', { username, method: 'voice' });
    const ref = new URL(received.at(-1)?.form.get('Url') ?? '').searchParams.get('ref') ?? '';
    const path = `/v1/telephony/twilio/voice/gather?ref=${ref}`;
    const form = { CallSid: 'CA2', Digits: '', FinishedOnKey: '#' };
    expect((await webhook(path, form, { signature: 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' })).status).toBe(403);
    expect((await webhook(path, form, { signature: '' })).status).toBe(403);
    expect((await webhook(path, form, { signature: twilioSignature(TOKEN, `${PUBLIC}/v1/telephony/twilio/voice?ref=${ref}`, form) })).status).toBe(403);
    expect((await webhook(path, form, { signature: twilioSignature('another-token', `${PUBLIC}${path}`, form) })).status).toBe(403);
    expect((await challenge(created.body.id)).status).toBe('calling');
    expect(t.logs.some((l) => l.includes('bad X-Twilio-Signature'))).toBe(true);
    // Malformed keys, signed: refused naming the field; unknown references end the call politely.
    expect((await webhook(path, { CallSid: 'CA2', Digits: '12ab', FinishedOnKey: '#' })).status).toBe(400);
    const unknown = await webhook('/v1/telephony/twilio/voice?ref=00000000-0000-0000-0000-000000000000', { CallSid: 'CA9' });
    expect(unknown.body).toContain('<Hangup/>');
    expect((await challenge(created.body.id)).status).toBe('calling');
  });

  it('status callbacks: no answer ends the call’s challenge as failed (no_answer) and updates the telephony log', async () => {
    const { username } = await phoneUser();
    const created = await t.api('POST', '/v1/challenges', { username, method: 'voice' });
    const ref = new URL(received.at(-1)?.form.get('Url') ?? '').searchParams.get('ref') ?? '';
    expect((await webhook(`/v1/telephony/twilio/status?ref=${ref}`, { CallSid: 'CA3', CallStatus: 'no-answer' })).status).toBe(204);
    expect(await challenge(created.body.id)).toMatchObject({ status: 'failed', reason: 'no_answer' });
    const log = await t.services.db.selectFrom('telephony_log').selectAll().where('id', '=', ref).executeTakeFirstOrThrow();
    expect(log).toMatchObject({ kind: 'call', provider: 'twilio', status: 'no-answer', provider_id: expect.stringMatching(/^CA/) });
  });

  it('a two-way text: Twilio sends it; the reply Y from the number approves; the same MessageSid again and unknown numbers are ignored', async () => {
    const { username, number } = await phoneUser();
    await t.admin('PATCH', '/v1/admin/settings?tenant=default', { sms_mode: 'two_way' });
    try {
      const created = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
      const sent = received.at(-1);
      expect(sent?.path).toBe(`/2010-04-01/Accounts/${SID}/Messages.json`);
      expect(sent?.form.get('To')).toBe(number);
      expect(sent?.form.get('Body')).toMatch(/reply \d{6} \(or Y\)/);
      const stranger = await webhook('/v1/telephony/twilio/sms', { From: '+12065559999', To: '+15005550006', Body: 'Y', MessageSid: 'SMx' });
      expect(stranger.body).toBe('<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
      expect((await challenge(created.body.id)).status).toBe('sent');
      expect((await webhook('/v1/telephony/twilio/sms', { From: number, To: '+15005550006', Body: ' y ', MessageSid: 'SM-reply-1' })).status).toBe(200);
      expect((await challenge(created.body.id)).status).toBe('approved');
      const second = await t.api('POST', '/v1/challenges', { username, method: 'sms' });
      await webhook('/v1/telephony/twilio/sms', { From: number, To: '+15005550006', Body: 'Y', MessageSid: 'SM-reply-1' });
      expect((await challenge(second.body.id)).status).toBe('sent');
    } finally {
      await t.admin('PATCH', '/v1/admin/settings?tenant=default', { sms_mode: 'one_way' });
    }
  });

  it('the auth token never appears in a log line', async () => {
    expect(t.logs.join('\n')).not.toContain(TOKEN);
  });
});

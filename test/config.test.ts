import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

/** Telephony and push settings: read from the file or the environment, every problem reported at once. */
describe('configuration of providers', () => {
  const load = (env: Record<string, string>, overrides: Record<string, unknown> = {}) => loadConfig({ env, overrides, cwd: '/nonexistent' });

  it('defaults: texts and calls go to the local outbox; no push service', () => {
    const config = load({});
    expect(config.telephony).toEqual({ provider: 'outbox', twilio: undefined, http: undefined });
    expect(config.push).toEqual({ webPush: undefined, fcm: undefined, apns: undefined });
    expect(config.publicUrl).toBeUndefined();
  });

  it('Twilio from the environment; a missing credential is named, all of them together', () => {
    const config = load({
      COUNTERSIGN_TELEPHONY_PROVIDER: 'twilio',
      COUNTERSIGN_TWILIO_ACCOUNT_SID: `AC${'a'.repeat(32)}`,
      COUNTERSIGN_TWILIO_AUTH_TOKEN: 'secret-token',
      COUNTERSIGN_TWILIO_FROM: '+15005550006',
      COUNTERSIGN_PUBLIC_URL: 'https://mfa.example.com/',
    });
    expect(config.telephony.twilio).toEqual({ accountSid: `AC${'a'.repeat(32)}`, authToken: 'secret-token', from: '+15005550006', apiUrl: 'https://api.twilio.com' });
    expect(config.publicUrl).toBe('https://mfa.example.com');
    const refused = () => load({ COUNTERSIGN_TELEPHONY_PROVIDER: 'twilio', COUNTERSIGN_TWILIO_ACCOUNT_SID: 'nope' });
    expect(refused).toThrow(/auth_token \(COUNTERSIGN_TWILIO_AUTH_TOKEN\): required/);
    expect(refused).toThrow(/from \(COUNTERSIGN_TWILIO_FROM\): required/);
    expect(refused).toThrow(/account_sid: must be AC followed by 32 hex digits/);
    expect(() => load({ COUNTERSIGN_TELEPHONY_PROVIDER: 'carrier-pigeon' })).toThrow(/telephony.provider: must be outbox, twilio or http/);
  });

  it('an HTTP SMS gateway needs a URL and a body with {{text}}; unknown settings are named', () => {
    expect(load({ COUNTERSIGN_TELEPHONY_PROVIDER: 'http', COUNTERSIGN_SMS_HTTP_URL: 'https://sms.example/send', COUNTERSIGN_SMS_HTTP_AUTHORIZATION: 'Bearer k' }).telephony.http).toMatchObject({
      url: 'https://sms.example/send',
      method: 'POST',
      headers: { Authorization: 'Bearer k' },
      body: '{"to":"{{to}}","text":"{{text}}"}',
    });
    expect(() => load({ COUNTERSIGN_TELEPHONY_PROVIDER: 'http', COUNTERSIGN_SMS_HTTP_URL: 'https://sms.example/send', COUNTERSIGN_SMS_HTTP_BODY: '{"to":"{{to}}"}' })).toThrow(/telephony.http.body: must contain \{\{text\}\}/);
    expect(() => load({}, { telephony: { provider: 'outbox', twillio: {} } })).toThrow(/telephony: unknown setting "twillio"/);
  });

  it('push services: PEM keys given with \\n in the environment get their newlines back; incomplete blocks are named', () => {
    const config = load({ COUNTERSIGN_FCM_PROJECT_ID: 'demo', COUNTERSIGN_FCM_CLIENT_EMAIL: 'svc@demo', COUNTERSIGN_FCM_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----\\nabc\\n-----END PRIVATE KEY-----' });
    expect(config.push.fcm?.privateKey).toBe('-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----');
    expect(() => load({ COUNTERSIGN_APNS_TEAM_ID: 'T' })).toThrow(/push.apns.key_id: required[\s\S]*push.apns.private_key: required[\s\S]*push.apns.topic: required/);
  });
});

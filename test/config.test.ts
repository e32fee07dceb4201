import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

/** Telephony and push settings: read from the file or the environment, every problem reported at once. */
describe('configuration of providers', () => {
  const load = (env: Record<string, string>, overrides: Record<string, unknown> = {}) => loadConfig({ env, overrides, cwd: '/nonexistent' });

  it('defaults: texts and calls go to the local outbox; no push service', () => {
    const config = load({});
    expect(config.telephony).toEqual({ provider: 'outbox', twilio: undefined, http: undefined });
    expect(config.push).toEqual({ webPush: undefined, fcm: undefined, apns: undefined });
    expect(config.geoip).toEqual({ database: undefined });
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

  it('Web Push: the push services it sends to default to the browsers\' own; endpoint_hosts replaces them, and bad hosts are named', () => {
    const vapid = { COUNTERSIGN_VAPID_PUBLIC_KEY: 'pub', COUNTERSIGN_VAPID_PRIVATE_KEY: 'priv', COUNTERSIGN_VAPID_SUBJECT: 'mailto:a@b.example' };
    expect(load(vapid).push.webPush?.endpointHosts).toBeUndefined();
    expect(load({ ...vapid, COUNTERSIGN_VAPID_ENDPOINT_HOSTS: 'push.contoso.com, *.push.example' }).push.webPush?.endpointHosts).toEqual(['push.contoso.com', '*.push.example']);
    expect(() => load({ ...vapid, COUNTERSIGN_VAPID_ENDPOINT_HOSTS: 'https://push.contoso.com/' })).toThrow('push.web_push.endpoint_hosts: "https://push.contoso.com/" is not a host name (or *.domain)');
  });

  it('Web Push endpoint_hosts and trusted_proxies: a YAML list or a comma-separated string; a list of non-strings is named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'countersign-config-'));
    try {
      const yaml = (text: string) => {
        writeFileSync(join(dir, 'countersign.yaml'), text);
        return loadConfig({ env: {}, cwd: dir });
      };
      const vapid = 'push:\n  web_push:\n    public_key: pub\n    private_key: priv\n    subject: mailto:a@b.example\n';
      expect(yaml(`${vapid}    endpoint_hosts:\n      - push.contoso.com\n      - "*.push.example"\n`).push.webPush).toEqual({
        publicKey: 'pub',
        privateKey: 'priv',
        subject: 'mailto:a@b.example',
        endpointHosts: ['push.contoso.com', '*.push.example'],
      });
      expect(yaml(`${vapid}    endpoint_hosts: [fcm.googleapis.com]\n`).push.webPush?.endpointHosts).toEqual(['fcm.googleapis.com']);
      expect(yaml(`${vapid}    endpoint_hosts: "push.contoso.com, *.push.example"\n`).push.webPush?.endpointHosts).toEqual(['push.contoso.com', '*.push.example']);
      expect(() => yaml(`${vapid}    endpoint_hosts:\n      - push.contoso.com\n      - https://evil.example/\n`)).toThrow('push.web_push.endpoint_hosts: "https://evil.example/" is not a host name (or *.domain)');
      expect(() => yaml(`${vapid}    endpoint_hosts:\n      - 42\n`)).toThrow('push.web_push.endpoint_hosts: must be a list of strings, or one comma-separated string');
      expect(() => yaml(`${vapid}    endpoint_hostz: [a.example]\n`)).toThrow('push.web_push: unknown setting "endpoint_hostz"');

      expect(yaml('trusted_proxies:\n  - 10.0.0.0/8\n  - 2001:db8::/32\n').trustedProxies).toEqual(['10.0.0.0/8', '2001:db8::/32']);
      expect(yaml('trusted_proxies: 10.0.0.5, loopback\n').trustedProxies).toEqual(['10.0.0.5/32', 'loopback']);
      expect(() => yaml('trusted_proxies: [10.0.0.0/8, nginx]\n')).toThrow('trusted_proxies (COUNTERSIGN_TRUSTED_PROXIES): "nginx" is not an IP address or CIDR range');
      expect(() => yaml('trust_proxy: true\n')).toThrow(/trust_proxy: replaced by trusted_proxies/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a GeoIP database: geoip.database or COUNTERSIGN_GEOIP_DATABASE, resolved against the working directory; bad values are named', () => {
    expect(loadConfig({ env: { COUNTERSIGN_GEOIP_DATABASE: 'geo/GeoLite2-City.mmdb' }, cwd: '/srv/countersign' }).geoip).toEqual({ database: '/srv/countersign/geo/GeoLite2-City.mmdb' });
    expect(load({}, { geoip: { database: '/var/lib/GeoIP/dbip-city-lite.mmdb' } }).geoip.database).toBe('/var/lib/GeoIP/dbip-city-lite.mmdb');
    expect(load({}, { geoip: {} }).geoip.database).toBeUndefined();
    expect(() => load({}, { geoip: '/a.mmdb' })).toThrow(/geoip: must be a mapping \(database\)/);
    expect(() => load({}, { geoip: { database: 42 } })).toThrow(/geoip.database \(COUNTERSIGN_GEOIP_DATABASE\): must be a string/);
    expect(() => load({}, { geoip: { databse: '/a.mmdb' } })).toThrow(/geoip: unknown setting "databse"/);
    expect(() => load({ COUNTERSIGN_GEOIP_DATABASE: '/downloads/GeoLite2-City_20260101.tar.gz' })).toThrow(
      /geoip.database \(COUNTERSIGN_GEOIP_DATABASE\): \/downloads\/GeoLite2-City_20260101.tar.gz is an archive: unpack it/,
    );
  });

  it('geoip in a YAML file; the environment wins over the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'countersign-config-'));
    try {
      writeFileSync(join(dir, 'countersign.yaml'), 'geoip:\n  database: ./GeoLite2-Country.mmdb\n');
      expect(loadConfig({ env: {}, cwd: dir }).geoip.database).toBe(join(dir, 'GeoLite2-Country.mmdb'));
      expect(loadConfig({ env: { COUNTERSIGN_GEOIP_DATABASE: '/var/lib/GeoIP/GeoLite2-City.mmdb' }, cwd: dir }).geoip.database).toBe('/var/lib/GeoIP/GeoLite2-City.mmdb');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

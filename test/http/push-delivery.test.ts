import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateVapidKeys } from '../../src/channels/push/web-push.js';
import { newKeyPair } from '../support/device.js';
import { createTestApp, type TestApp } from '../support/harness.js';

/**
 * A push reaches a device registered with FCM: the server gets an OAuth2 token and calls
 * messages:send on a local server playing Google; a registration FCM says is gone falls back to polling.
 */
describe('push delivery through a configured service (FCM)', () => {
  let t: TestApp;
  let google: Server;
  const sent: { token: string; data: Record<string, string> }[] = [];
  let unregistered = new Set<string>();

  beforeAll(async () => {
    google = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        if (request.url === '/token') {
          response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'ya29.test', expires_in: 3600, token_type: 'Bearer' }));
          return;
        }
        const message = (JSON.parse(body) as { message: { token: string; data: Record<string, string> } }).message;
        if (unregistered.has(message.token)) {
          response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 404, status: 'NOT_FOUND', details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' }] } }));
          return;
        }
        sent.push({ token: message.token, data: message.data });
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'projects/demo/messages/1' }));
      });
    });
    await new Promise<void>((resolve) => google.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(google.address() as AddressInfo).port}`;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    t = await createTestApp({ config: { push: { fcm: { project_id: 'demo', client_email: 'svc@demo.iam.gserviceaccount.com', private_key: pem, token_url: `${base}/token`, api_url: base } } } });
  });
  afterAll(async () => {
    await t.close();
    await new Promise((resolve) => google.close(resolve));
  });

  const activate = async (username: string, body: Record<string, unknown>) => {
    const started = await t.admin('POST', `/v1/admin/users/${username}/push/activation?tenant=default`);
    const code = new URL(started.body.activation_url).hash.replace('#activate=', '');
    return t.app.inject({ method: 'POST', url: '/v1/authenticator/activate', payload: { code, public_key: newKeyPair().publicKey, name: 'Android', ...body } });
  };
  const until = async (check: () => boolean | Promise<boolean>) => {
    for (let i = 0; i < 100 && !(await check()); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  };

  it('a new push is sent to the device’s FCM token with the challenge id only', async () => {
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'fcm@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    expect((await activate('fcm@contoso.com', { channel: 'fcm', target: 'fcm-token-1' })).statusCode).toBe(201);
    const request = await t.api('POST', '/v1/challenges', { username: 'fcm@contoso.com', method: 'push', context: { app: 'VPN', ip: '203.0.113.5' } });
    await until(() => sent.length > 0);
    expect(sent).toEqual([{ token: 'fcm-token-1', data: { type: 'push', challenge_id: request.body.id, tenant: 'default' } }]);
  });

  it('a registration FCM says is gone is dropped: the device falls back to fetching its requests', async () => {
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'gone@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    const activated = await activate('gone@contoso.com', { channel: 'fcm', target: 'fcm-token-gone' });
    unregistered = new Set(['fcm-token-gone']);
    expect((await t.api('POST', '/v1/challenges', { username: 'gone@contoso.com', method: 'push' })).status).toBe(201);
    const device = () => t.services.db.selectFrom('push_devices').selectAll().where('id', '=', activated.json().device_id).executeTakeFirstOrThrow();
    await until(async () => (await device()).channel === 'poll');
    expect(await device()).toMatchObject({ channel: 'poll', target: null });
  });

  it('a channel the server has not configured, or a missing target, is refused naming the field', async () => {
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'apns@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    expect((await activate('apns@contoso.com', { channel: 'apns', target: 'ab'.repeat(32) })).json().error.message).toMatch(/^channel: this server has no apns configured/);
    expect((await activate('apns@contoso.com', { channel: 'fcm' })).json().error.message).toMatch(/^target: /);
    expect((await t.app.inject({ method: 'GET', url: '/v1/authenticator/web-push-key' })).json()).toEqual({ public_key: null });
  });
});

/** Web Push subscriptions may point only at the browsers' push services: the server never sends where a device says (SSRF). */
describe('Web Push activation', () => {
  let t: TestApp;
  beforeAll(async () => {
    const vapid = generateVapidKeys();
    t = await createTestApp({ config: { push: { web_push: { public_key: vapid.publicKey, private_key: vapid.privateKey, subject: 'mailto:security@countersign.example' } } } });
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'browser@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
  });
  afterAll(async () => {
    await t.close();
  });

  const activate = async (endpoint: string) => {
    const started = await t.admin('POST', '/v1/admin/users/browser@contoso.com/push/activation?tenant=default');
    const code = new URL(started.body.activation_url).hash.replace('#activate=', '');
    const target = JSON.stringify({ endpoint, keys: { p256dh: 'BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM', auth: 'tBHItJI5svbpez7KI4CCXg' } });
    return t.app.inject({ method: 'POST', url: '/v1/authenticator/activate', payload: { code, public_key: newKeyPair().publicKey, name: 'Chrome', channel: 'webpush', target } });
  };

  it('refuses a subscription whose endpoint is not a known push service, naming the field, and keeps no device', async () => {
    for (const endpoint of ['https://169.254.169.254/latest/meta-data', 'https://127.0.0.1:5432/', 'https://intranet.contoso.com/admin']) {
      const refused = await activate(endpoint);
      expect(refused.statusCode).toBe(400);
      expect(refused.json().error.message).toBe(`target: the Web Push endpoint's host ${new URL(endpoint).hostname} is not a push service this server sends to (push.web_push.endpoint_hosts)`);
    }
    expect((await t.admin('GET', '/v1/admin/users/browser@contoso.com/push/devices?tenant=default')).body.devices).toEqual([]);
    const accepted = await activate('https://fcm.googleapis.com/fcm/send/dGVzdA:APA91b');
    expect(accepted.statusCode).toBe(201);
    expect((await t.app.inject({ method: 'GET', url: '/v1/authenticator/web-push-key' })).json().public_key).toMatch(/^[A-Za-z0-9_-]{87}$/);
  });
});

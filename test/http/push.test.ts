import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateOtp, timeStep } from '../../src/core/otp/generate-otp.js';
import { Secret } from 'otpauth';
import { activateDevice, newKeyPair } from '../support/device.js';
import { createTestApp, type TestApp } from '../support/harness.js';

/** Push activation as an administrator sees it: devices, preauth, and an authenticator that carries a TOTP secret. */
describe('push activation and devices', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('an activation with_totp gives the device a TOTP secret whose codes verify; devices are listed and removed', async () => {
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'carry@contoso.com', mfa_state: 'enabled' })).status).toBe(201);
    const started = await t.admin('POST', '/v1/admin/users/carry@contoso.com/push/activation?tenant=default', { with_totp: true });
    expect(started.status).toBe(201);
    expect(started.body.activation_url).toMatch(/^http:\/\/localhost:8080\/authenticator#activate=[A-Za-z0-9_-]{22}$/);
    const code = new URL(started.body.activation_url).hash.replace('#activate=', '');
    // The link can be previewed (for whom, until when) without using it …
    const preview = () => t.app.inject({ method: 'POST', url: '/v1/authenticator/activation', payload: { code } });
    expect((await preview()).json()).toEqual({ tenant: 'default', username: 'carry@contoso.com', expires_at: started.body.expires_at, with_totp: true });
    expect((await preview()).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'POST', url: '/v1/authenticator/activation', payload: { code: 'short' } })).json().error.message).toMatch(/^code: /);
    const activated = await t.app.inject({ method: 'POST', url: '/v1/authenticator/activate', payload: { code, public_key: newKeyPair().publicKey, name: 'Pixel' } });
    expect(activated.statusCode).toBe(201);
    // … and once used, the preview says it is gone.
    expect((await preview()).json()).toEqual({ error: { code: 'NOT_FOUND', message: 'the activation code is unknown, already used or expired: ask for a new link' } });
    const body = activated.json();
    expect(body).toMatchObject({ tenant: 'default', username: 'carry@contoso.com', totp: { algorithm: 'SHA1', digits: 6, period: 30 } });
    expect(body.totp.uri).toMatch(/^otpauth:\/\/totp\//);
    // Registration is complete: the enabled user became enforced, with push and the app code.
    const user = await t.admin('GET', '/v1/admin/users/carry@contoso.com?tenant=default');
    expect(user.body.mfa_state).toBe('enforced');
    const pre = await t.api('POST', '/v1/preauth', { username: 'carry@contoso.com' });
    expect(pre.body.methods.map((m: { type: string }) => m.type)).toEqual(['totp', 'push']);
    // The code the device shows right after activation signs in (activation spends no step) …
    const now = generateOtp(Secret.fromBase32(body.totp.secret).bytes, timeStep(t.clock.ms(), 30), { algorithm: 'SHA1', digits: 6 });
    expect((await t.api('POST', '/v1/verify', { username: 'carry@contoso.com', code: now })).body).toEqual({ result: 'approved', reason: 'approved' });
    // … once, and so does the next step's.
    expect((await t.api('POST', '/v1/verify', { username: 'carry@contoso.com', code: now })).body).toMatchObject({ result: 'denied' });
    t.clock.advance(30_000);
    const next = generateOtp(Secret.fromBase32(body.totp.secret).bytes, timeStep(t.clock.ms(), 30), { algorithm: 'SHA1', digits: 6 });
    expect((await t.api('POST', '/v1/verify', { username: 'carry@contoso.com', code: next })).body).toEqual({ result: 'approved', reason: 'approved' });
    const devices = await t.admin('GET', '/v1/admin/users/carry@contoso.com/push/devices?tenant=default');
    expect(devices.body.devices).toMatchObject([{ id: body.device_id, name: 'Pixel', channel: 'poll' }]);
    expect((await t.admin('DELETE', `/v1/admin/users/carry@contoso.com/push/devices/${body.device_id}?tenant=default`)).status).toBe(204);
    expect((await t.api('POST', '/v1/challenges', { username: 'carry@contoso.com', method: 'push' })).status).toBe(404);
  });

  it('a removed authenticator is told so plainly (DEVICE_UNKNOWN), not how to sign a request', async () => {
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'gone@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    const device = await activateDevice(t, 'gone@contoso.com');
    expect((await device.pending()).status).toBe(200);
    expect((await t.admin('DELETE', `/v1/admin/users/gone@contoso.com/push/devices/${device.id}?tenant=default`)).status).toBe(204);
    expect(await device.pending()).toEqual({
      status: 401,
      body: { error: { code: 'DEVICE_UNKNOWN', message: 'this authenticator is not activated on this server: an administrator removed it, or it was never activated' } },
    });
    // A malformed header still gets the instructions.
    const bare = await t.app.inject({ method: 'GET', url: '/v1/authenticator/pending', headers: { authorization: 'Device nonsense' } });
    expect(bare.json().error.code).toBe('UNAUTHORIZED');
  });
});

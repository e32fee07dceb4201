import { Secret } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/harness.js';
import { oathtool, totpAt } from '../support/otp.js';

/**
 * TOTP enrollment through the admin API (issue 2, item 4): a 160-bit secret, the otpauth URI
 * and QR codes, a method that stays `pending` until its first correct code, the options
 * (SHA1/SHA256/SHA512, 6 or 8 digits, 30 or 60 s) and the limit of five code methods per user.
 * Codes come from the real oathtool wherever the point is that an independent app agrees.
 */
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** The fake clock's time as oathtool's --now takes it: "2026-01-15 12:00:00 UTC". */
function oathtoolNow(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC');
}

/** A 6-digit code that is none of the codes accepted now (steps −1, 0, +1). */
function wrongCode(secret: string, ms: number): string {
  const accepted = new Set([-1, 0, 1].map((step) => totpAt(secret, ms + step * 30_000)));
  for (let n = 0; ; n++) {
    const candidate = String((Number(totpAt(secret, ms)) + 1 + n) % 1_000_000).padStart(6, '0');
    if (!accepted.has(candidate)) return candidate;
  }
}

async function addUser(username: string, state = 'enabled', tenant = 'default'): Promise<void> {
  const created = await t.admin('POST', `/v1/admin/users?tenant=${tenant}`, { username, mfa_state: state });
  expect(created.status).toBe(201);
}

async function enroll(username: string, body: Record<string, unknown> = {}) {
  return t.admin('POST', `/v1/admin/users/${encodeURIComponent(username)}/methods/totp?tenant=default`, body);
}

/** Raw response text, so a check for a secret sees every byte the caller would. */
async function rawAdmin(method: 'GET' | 'POST', url: string, body?: Record<string, unknown>): Promise<string> {
  const response = await t.app.inject({ method, url, headers: { authorization: `Bearer ${t.adminKey}` }, ...(body === undefined ? {} : { payload: body }) });
  return response.body;
}

async function rawApi(url: string, body: Record<string, unknown>): Promise<string> {
  const response = await t.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${t.appKey}` }, payload: body });
  return response.body;
}

describe('TOTP enrollment', () => {
  it('OTP-05: the enrollment secret is Base32 of exactly 20 bytes (160 bits), fresh for each enrollment', async () => {
    await addUser('seed@contoso.com');
    const first = await enroll('seed@contoso.com');
    const second = await enroll('seed@contoso.com');
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(first.body.secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(Secret.fromBase32(first.body.secret as string).bytes.length).toBe(20);
    expect(Secret.fromBase32(second.body.secret as string).bytes.length).toBe(20);
    expect(second.body.secret).not.toBe(first.body.secret);
  });

  it('returns the otpauth URI (issuer = tenant name, label issuer:username) and the QR code as PNG and SVG', async () => {
    const username = 'uri+test@contoso.com';
    await addUser(username);
    const enrolled = await enroll(username);
    expect(enrolled.status).toBe(201);
    const secret = enrolled.body.secret as string;

    const uri = enrolled.body.uri as string;
    expect(uri).toBe(`otpauth://totp/default:${encodeURIComponent(username)}?issuer=default&secret=${secret}&algorithm=SHA1&digits=6&period=30`);
    const parsed = new URL(uri);
    expect(parsed.protocol).toBe('otpauth:');
    expect(parsed.host).toBe('totp');
    expect(decodeURIComponent(parsed.pathname)).toBe(`/default:${username}`);
    expect([...parsed.searchParams.entries()]).toEqual([
      ['issuer', 'default'],
      ['secret', secret],
      ['algorithm', 'SHA1'],
      ['digits', '6'],
      ['period', '30'],
    ]);

    const png = enrolled.body.qr_png as string;
    expect(png.startsWith('data:image/png;base64,')).toBe(true);
    const bytes = Buffer.from(png.slice('data:image/png;base64,'.length), 'base64');
    expect([...bytes.subarray(0, 8)]).toEqual(PNG_SIGNATURE);
    expect(bytes.subarray(12, 16).toString('latin1')).toBe('IHDR');

    const svg = enrolled.body.qr_svg as string;
    expect(/^(<svg|<\?xml)/.test(svg)).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);

    expect(enrolled.body.method).toMatchObject({ type: 'totp', status: 'pending', default: false, otp_kind: 'totp', algorithm: 'SHA1', digits: 6, period: 30, serial: null, last_used_at: null });
  });

  it('a pending method is not usable: verify denies its code and preauth does not list it', async () => {
    const username = 'pending@contoso.com';
    await addUser(username);
    const enrolled = await enroll(username);
    const secret = enrolled.body.secret as string;
    const code = oathtool(['--totp', '-b', secret, '--now', oathtoolNow(t.clock.ms())]);
    expect(code).toBe(totpAt(secret, t.clock.ms()));

    expect((await t.api('POST', '/v1/verify', { username, code })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect((await t.api('POST', '/v1/preauth', { username })).body).toMatchObject({ result: 'enroll', reason: 'registration_required', methods: [] });
    const listed = await t.admin('GET', `/v1/admin/users/${username}/methods?tenant=default`);
    expect(listed.body.methods.map((m: { id: string; status: string }) => [m.id, m.status])).toEqual([[enrolled.body.method.id, 'pending']]);
  });

  it('activation: a wrong code is refused naming `code`; the right one makes the method active and default; that code is then spent', async () => {
    const username = 'activate@contoso.com';
    await addUser(username);
    const enrolled = await enroll(username);
    const secret = enrolled.body.secret as string;
    const methodId = enrolled.body.method.id as string;
    const activateUrl = `/v1/admin/users/${username}/methods/${methodId}/activate?tenant=default`;

    expect(await t.admin('POST', activateUrl, { code: wrongCode(secret, t.clock.ms()) })).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_INPUT', message: 'code: is not the current code of this authenticator' } },
    });
    expect(await t.admin('POST', activateUrl, { code: 'abcdef' })).toEqual({ status: 400, body: { error: { code: 'INVALID_INPUT', message: 'code: must be 6 or 8 digits' } } });
    expect((await t.admin('GET', `/v1/admin/users/${username}/methods?tenant=default`)).body.methods[0].status).toBe('pending');

    const code = oathtool(['--totp', '-b', secret, '--now', oathtoolNow(t.clock.ms())]);
    const activated = await t.admin('POST', activateUrl, { code });
    expect(activated.status).toBe(200);
    expect(activated.body).toMatchObject({ id: methodId, type: 'totp', status: 'active', default: true });
    expect((await t.admin('POST', activateUrl, { code })).status).toBe(409);

    // The activation code's step was consumed: the same code does not sign in (OTP-01).
    expect((await t.api('POST', '/v1/verify', { username, code })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect((await t.api('POST', '/v1/preauth', { username })).body).toMatchObject({
      result: 'challenge',
      reason: 'mfa_required',
      methods: [{ id: methodId, type: 'totp', label: 'Authenticator app', default: true }],
    });
    expect((await t.admin('GET', `/v1/admin/users/${username}?tenant=default`)).body.mfa_state).toBe('enforced');

    // The next step's code, from oathtool, does.
    t.clock.advance(30_000);
    const next = oathtool(['--totp', '-b', secret, '--now', oathtoolNow(t.clock.ms())]);
    expect(next).not.toBe(code);
    expect((await t.api('POST', '/v1/verify', { username, code: next })).body).toEqual({ result: 'approved', reason: 'approved' });
  });

  it('an enrollment not activated within 15 minutes expires: its correct code is then refused with 409', async () => {
    const username = 'late@contoso.com';
    await addUser(username);
    const enrolled = await enroll(username);
    const secret = enrolled.body.secret as string;
    t.clock.advance(15 * 60_000 + 1_000);
    const code = oathtool(['--totp', '-b', secret, '--now', oathtoolNow(t.clock.ms())]);
    expect(await t.admin('POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate?tenant=default`, { code })).toEqual({
      status: 409,
      body: { error: { code: 'CONFLICT', message: 'the enrollment expired; start it again' } },
    });
    expect((await t.api('POST', '/v1/verify', { username, code })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
  });

  it('a tenant that does not allow authenticator apps refuses the enrollment with 403', async () => {
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'tokens-only' })).status).toBe(201);
    expect((await t.admin('PATCH', '/v1/admin/settings?tenant=tokens-only', { allowed_methods: ['oath'] })).status).toBe(200);
    await addUser('noapp@contoso.com', 'enabled', 'tokens-only');
    expect(await t.admin('POST', '/v1/admin/users/noapp@contoso.com/methods/totp?tenant=tokens-only', {})).toEqual({
      status: 403,
      body: { error: { code: 'FORBIDDEN', message: 'the tenant does not allow authenticator app codes (totp)' } },
    });
    expect((await t.admin('GET', '/v1/admin/users/noapp@contoso.com/methods?tenant=tokens-only')).body).toEqual({ methods: [] });
  });

  it('SHA256, 8 digits, 60 s: the URI says so and a code from `oathtool --totp=sha256 -d 8 -s 60` verifies', async () => {
    const username = 'sha256@contoso.com';
    await addUser(username, 'enforced');
    const enrolled = await enroll(username, { algorithm: 'SHA256', digits: 8, period: 60 });
    expect(enrolled.status).toBe(201);
    const secret = enrolled.body.secret as string;
    expect(Secret.fromBase32(secret).bytes.length).toBe(20);
    expect(enrolled.body.uri).toBe(`otpauth://totp/default:${encodeURIComponent(username)}?issuer=default&secret=${secret}&algorithm=SHA256&digits=8&period=60`);
    expect(Object.fromEntries(new URL(enrolled.body.uri as string).searchParams)).toEqual({ issuer: 'default', secret, algorithm: 'SHA256', digits: '8', period: '60' });
    expect(enrolled.body.method).toMatchObject({ status: 'pending', algorithm: 'SHA256', digits: 8, period: 60 });

    const codeAt = (ms: number): string => oathtool(['--totp=sha256', '-d', '8', '-s', '60', '-b', secret, '--now', oathtoolNow(ms)]);
    // Start at the beginning of a 60-second step (forward only), so +30 s stays inside it.
    t.clock.set(Math.ceil(t.clock.ms() / 60_000) * 60_000);
    const activationCode = codeAt(t.clock.ms());
    expect(activationCode).toMatch(/^\d{8}$/);
    expect(activationCode).toBe(totpAt(secret, t.clock.ms(), { algorithm: 'SHA256', digits: 8, period: 60 }));
    const activated = await t.admin('POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate?tenant=default`, { code: activationCode });
    expect(activated.body).toMatchObject({ status: 'active', default: true });

    // 30 s later is still the same 60-second step: its code is spent.
    t.clock.advance(30_000);
    expect(codeAt(t.clock.ms())).toBe(activationCode);
    expect((await t.api('POST', '/v1/verify', { username, code: activationCode })).body).toEqual({ result: 'denied', reason: 'invalid_code' });
    // A 6-digit SHA-1 code for the same secret is not this method's code.
    expect((await t.api('POST', '/v1/verify', { username, code: totpAt(secret, t.clock.ms() + 60_000) })).body).toEqual({ result: 'denied', reason: 'invalid_code' });

    t.clock.advance(30_000);
    const next = codeAt(t.clock.ms());
    expect(next).not.toBe(activationCode);
    expect((await t.api('POST', '/v1/verify', { username, code: next })).body).toEqual({ result: 'approved', reason: 'approved' });
  });

  it('SHA512 with 6 digits and 30 s enrolls and activates with oathtool’s code', async () => {
    const username = 'sha512@contoso.com';
    await addUser(username);
    const enrolled = await enroll(username, { algorithm: 'SHA512' });
    const secret = enrolled.body.secret as string;
    expect(Object.fromEntries(new URL(enrolled.body.uri as string).searchParams)).toEqual({ issuer: 'default', secret, algorithm: 'SHA512', digits: '6', period: '30' });
    const code = oathtool(['--totp=sha512', '-b', secret, '--now', oathtoolNow(t.clock.ms())]);
    const activated = await t.admin('POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate?tenant=default`, { code });
    expect(activated.body).toMatchObject({ status: 'active', algorithm: 'SHA512', digits: 6, period: 30 });
  });

  it('refuses an invalid algorithm, digits or period with 400 naming the field, and stores nothing', async () => {
    const username = 'badopts@contoso.com';
    await addUser(username);
    expect(await enroll(username, { algorithm: 'MD5' })).toEqual({ status: 400, body: { error: { code: 'INVALID_INPUT', message: 'algorithm: must be SHA1, SHA256 or SHA512' } } });
    expect(await enroll(username, { algorithm: 'sha1' })).toEqual({ status: 400, body: { error: { code: 'INVALID_INPUT', message: 'algorithm: must be SHA1, SHA256 or SHA512' } } });
    expect(await enroll(username, { digits: 7 })).toEqual({ status: 400, body: { error: { code: 'INVALID_INPUT', message: 'digits: must be 6 or 8' } } });
    expect(await enroll(username, { period: 45 })).toEqual({ status: 400, body: { error: { code: 'INVALID_INPUT', message: 'period: must be 30 or 60' } } });
    expect(await enroll(username, { period: 30.5 })).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT' } } });
    expect((await enroll(username, { period: 30.5 })).body.error.message).toMatch(/^period: /);
    expect((await enroll(username, { secret: 'JBSWY3DPEHPK3PXP' })).body).toEqual({ error: { code: 'INVALID_INPUT', message: 'secret: is not a known field' } });
    expect((await t.admin('GET', `/v1/admin/users/${username}/methods?tenant=default`)).body).toEqual({ methods: [] });
  });

  it('at most 5 code methods per user, imported tokens included: the 6th is 409 LIMIT_REACHED', async () => {
    const username = 'five@contoso.com';
    await addUser(username, 'enforced');
    const csv = [
      'upn,serial number,secret key,time interval,manufacturer,model',
      `${username},FIVE-1,${new Secret({ size: 20 }).base32},30,Contoso,Key`,
      `${username},FIVE-2,${new Secret({ size: 20 }).base32},60,Contoso,Key`,
    ].join('\n');
    const imported = await t.admin('POST', '/v1/admin/tokens/import?tenant=default', csv);
    expect(imported.status).toBe(200);
    expect(imported.body.imported.map((i: { serial: string; username: string }) => [i.serial, i.username])).toEqual([
      ['FIVE-1', username],
      ['FIVE-2', username],
    ]);
    const enrolled: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await enroll(username);
      expect(response.status).toBe(201);
      enrolled.push(response.body.method.id as string);
    }
    expect(await enroll(username)).toEqual({
      status: 409,
      body: { error: { code: 'LIMIT_REACHED', message: 'the user already has 5 code methods (authenticator apps and tokens); remove one first' } },
    });
    const methods = (await t.admin('GET', `/v1/admin/users/${username}/methods?tenant=default`)).body.methods as { type: string }[];
    expect(methods.map((m) => m.type).sort()).toEqual(['oath', 'oath', 'totp', 'totp', 'totp']);

    // A token import for the full user is refused the same way, line by line.
    const more = await t.admin('POST', '/v1/admin/tokens/import?tenant=default', `upn,serial number,secret key,time interval,manufacturer,model\n${username},FIVE-3,${new Secret({ size: 20 }).base32},30,,`);
    expect(more.body).toEqual({ format: 'csv', imported: [], refused: [{ position: 'line 2', reason: `user ${username} already has 5 code methods` }] });

    // Removing one makes room for exactly one more.
    expect((await t.admin('DELETE', `/v1/admin/users/${username}/methods/${enrolled[0] ?? ''}?tenant=default`)).status).toBe(204);
    expect((await enroll(username)).status).toBe(201);
    expect((await enroll(username)).status).toBe(409);
  });

  it('pending enrollments older than 15 minutes stop counting toward the limit', async () => {
    const username = 'stale@contoso.com';
    await addUser(username);
    for (let i = 0; i < 5; i++) expect((await enroll(username)).status).toBe(201);
    expect((await enroll(username)).status).toBe(409);
    t.clock.advance(15 * 60_000 + 1_000);
    const fresh = await enroll(username);
    expect(fresh.status).toBe(201);
    const methods = (await t.admin('GET', `/v1/admin/users/${username}/methods?tenant=default`)).body.methods as { id: string }[];
    expect(methods.map((m) => m.id)).toEqual([fresh.body.method.id]);
  });

  it('the enrollment secret is shown once: it is in no later response (methods, user, activation, verify, preauth, audit)', async () => {
    const username = 'secret-once@contoso.com';
    await addUser(username);
    const enrolled = await enroll(username);
    const secret = enrolled.body.secret as string;
    const methodId = enrolled.body.method.id as string;
    const bytes = Buffer.from(Secret.fromBase32(secret).bytes);
    const forms = [secret, secret.toLowerCase(), bytes.toString('hex'), bytes.toString('base64'), bytes.toString('base64url')];

    const later: string[] = [];
    later.push(await rawAdmin('GET', `/v1/admin/users/${username}/methods?tenant=default`));
    later.push(await rawAdmin('GET', `/v1/admin/users/${username}?tenant=default`));
    const code = totpAt(secret, t.clock.ms());
    later.push(await rawApi('/v1/verify', { username, code }));
    later.push(await rawAdmin('POST', `/v1/admin/users/${username}/methods/${methodId}/activate?tenant=default`, { code }));
    later.push(await rawAdmin('GET', `/v1/admin/users/${username}/methods?tenant=default`));
    later.push(await rawApi('/v1/preauth', { username }));
    t.clock.advance(30_000);
    later.push(await rawApi('/v1/verify', { username, code: totpAt(secret, t.clock.ms()) }));
    later.push(await rawAdmin('GET', '/v1/admin/tokens?tenant=default'));
    later.push(await rawAdmin('GET', '/v1/admin/audit?tenant=default'));

    expect(later[3]).toContain('"status":"active"');
    expect(later[6]).toBe('{"result":"approved","reason":"approved"}');
    expect(later[8]).toContain(methodId);
    for (const body of later) {
      for (const form of forms) expect(body).not.toContain(form);
    }
    // Nor in any log line written so far.
    expect(t.logs.length).toBeGreaterThan(0);
    for (const line of t.logs) {
      for (const form of forms) expect(line).not.toContain(form);
    }
  });
});

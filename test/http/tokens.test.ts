import { readFileSync } from 'node:fs';
import { Secret } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/harness.js';
import { oathtool } from '../support/otp.js';

/**
 * OATH hardware tokens through the admin API (issue 2, item 5): the Azure CSV and PSKC
 * (RFC 6030) imports, the inventory, assignment, HOTP look-ahead and resync, deletion. The
 * issue is done when "a token imported from CSV verifies codes made by an independent
 * generator such as oathtool": every code here comes from the real oathtool, or is an RFC
 * 4226 Appendix D vector.
 */
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

const HEADER = 'upn,serial number,secret key,time interval,manufacturer,model';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** RFC 4226 Appendix D: key ASCII "12345678901234567890". */
const RFC4226_KEY_HEX = Buffer.from('12345678901234567890').toString('hex');
const RFC4226_KEY_BASE64 = Buffer.from('12345678901234567890').toString('base64');
const RFC4226_CODES = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
const FIGURE6_PSK = '12345678901234567890123456789012';

const fixture = (name: string): string => readFileSync(new URL(`../../src/methods/oath/fixtures/${name}`, import.meta.url), 'utf8');

/** The fake clock's time as oathtool's --now takes it: "2026-01-15 12:00:00 UTC". */
function oathtoolNow(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC');
}

function totpFromOathtool(base32: string, ms: number, period: 30 | 60 = 30): string {
  return oathtool(['--totp', '-s', `${period}s`, '-b', base32, '--now', oathtoolNow(ms)]);
}

function hotpFromOathtool(hexKey: string, counter: number, digits: 6 | 8 = 6): string {
  return oathtool(['-d', String(digits), '-c', String(counter), hexKey]);
}

function newSecret(): string {
  return new Secret({ size: 20 }).base32;
}

async function addUser(username: string, state = 'enforced', tenant = 'default'): Promise<void> {
  expect((await t.admin('POST', `/v1/admin/users?tenant=${tenant}`, { username, mfa_state: state })).status).toBe(201);
}

async function verify(username: string, code: string, key = t.appKey): Promise<unknown> {
  const response = await t.app.inject({ method: 'POST', url: '/v1/verify', headers: { authorization: `Bearer ${key}` }, payload: { username, code } });
  return response.json();
}

async function importXml(xml: string, headers: Record<string, string> = {}, tenant = 'default'): ReturnType<TestApp['admin']> {
  return t.upload(`/v1/admin/tokens/import?tenant=${tenant}`, xml, 'application/xml', headers);
}

async function tokenSerials(tenant = 'default'): Promise<string[]> {
  const listed = await t.admin('GET', `/v1/admin/tokens?tenant=${tenant}`);
  expect(listed.status).toBe(200);
  return (listed.body.tokens as { serial: string }[]).map((token) => token.serial);
}

/** A plain-value PSKC file (RFC 6030 §6) holding the RFC 4226 key as a 6-digit HOTP token. */
function plainHotpPskc(serial: string, userId: string | null, counter = 0): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
  <KeyPackage>
    <DeviceInfo><Manufacturer>Acme</Manufacturer><SerialNo>${serial}</SerialNo></DeviceInfo>
    <Key Id="k-${serial}" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
      <AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data>
        <Secret><PlainValue>${RFC4226_KEY_BASE64}</PlainValue></Secret>
        <Counter><PlainValue>${counter}</PlainValue></Counter>
      </Data>
      ${userId === null ? '' : `<UserId>${userId}</UserId>`}
    </Key>
  </KeyPackage>
</KeyContainer>`;
}

describe('Azure CSV import', () => {
  const secret30 = newSecret();
  const secret60 = newSecret();
  const secretInventory = newSecret();

  it('imports good lines and refuses each bad one with its line and reason; imported tokens verify oathtool codes (30 s and 60 s)', async () => {
    await addUser('carol@contoso.com');
    await addUser('erin@contoso.com', 'enabled');
    const csv = [
      HEADER,
      `carol@contoso.com,CSV-30,${secret30},30,Contoso,HardwareKey`,
      `,CSV-INV,${secretInventory},60,Contoso,HardwareKey`,
      'carol@contoso.com,CSV-BAD32,ABCDEFGH1JKLMNOP,30,Contoso,HardwareKey',
      `carol@contoso.com,CSV-45,${newSecret()},45,Contoso,HardwareKey`,
      `ghost@contoso.com,CSV-GHOST,${newSecret()},30,Contoso,HardwareKey`,
      `ERIN@contoso.com,CSV-60,${secret60.toLowerCase()},60,Contoso,HardwareKey`,
    ].join('\r\n');
    const response = await t.admin('POST', '/v1/admin/tokens/import?tenant=default', csv);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      format: 'csv',
      imported: [
        { position: 'line 2', id: expect.stringMatching(UUID), serial: 'CSV-30', username: 'carol@contoso.com' },
        { position: 'line 3', id: expect.stringMatching(UUID), serial: 'CSV-INV', username: null },
        { position: 'line 7', id: expect.stringMatching(UUID), serial: 'CSV-60', username: 'erin@contoso.com' },
      ],
      refused: [
        { position: 'line 4', reason: 'secret key is not valid Base32' },
        { position: 'line 5', reason: 'time interval must be 30 or 60 (found "45")' },
        { position: 'line 6', reason: 'user ghost@contoso.com is not in tenant default' },
      ],
    });
    expect(await tokenSerials()).toEqual(['CSV-30', 'CSV-60', 'CSV-INV']);

    // An assigned token is usable at once, and it is the user's default method.
    const code30 = totpFromOathtool(secret30, t.clock.ms(), 30);
    expect(await verify('carol@contoso.com', code30)).toEqual({ result: 'approved', reason: 'approved' });
    expect(await verify('carol@contoso.com', code30)).toEqual({ result: 'denied', reason: 'invalid_code' });
    const code60 = totpFromOathtool(secret60, t.clock.ms(), 60);
    expect(code60).not.toBe(totpFromOathtool(secret60, t.clock.ms(), 30));
    expect(await verify('erin@contoso.com', code60)).toEqual({ result: 'approved', reason: 'approved' });
    const carolId = response.body.imported[0].id as string;
    expect((await t.api('POST', '/v1/preauth', { username: 'carol@contoso.com' })).body).toMatchObject({
      result: 'challenge',
      reason: 'mfa_required',
      methods: [{ id: carolId, type: 'oath', label: 'Contoso HardwareKey', default: true }],
    });
    // Registration completed: the enabled user is now enforced.
    expect((await t.admin('GET', '/v1/admin/users/erin@contoso.com?tenant=default')).body.mfa_state).toBe('enforced');
  });

  it('the 60-second token steps every 60 s: the next step’s oathtool code verifies, a 30-s-token reading does not', async () => {
    t.clock.advance(60_000);
    const now = t.clock.ms();
    const wrongPeriod = totpFromOathtool(secret60, now, 30);
    const rightPeriod = totpFromOathtool(secret60, now, 60);
    expect(rightPeriod).not.toBe(wrongPeriod);
    expect(await verify('erin@contoso.com', wrongPeriod)).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect(await verify('erin@contoso.com', rightPeriod)).toEqual({ result: 'approved', reason: 'approved' });
  });

  it('an unassigned token waits in the inventory until assigned; assign twice → 409; unassign returns it', async () => {
    await addUser('frank@contoso.com', 'enabled');
    const inventory = await t.admin('GET', '/v1/admin/tokens?tenant=default&unassigned=true');
    expect(inventory.body).toEqual({
      tokens: [
        {
          id: expect.stringMatching(UUID),
          serial: 'CSV-INV',
          username: null,
          otp_kind: 'totp',
          algorithm: 'SHA1',
          digits: 6,
          period: 60,
          manufacturer: 'Contoso',
          model: 'HardwareKey',
          created_at: new Date(Date.UTC(2026, 0, 15, 12, 0, 0)).toISOString(),
        },
      ],
    });

    const code = totpFromOathtool(secretInventory, t.clock.ms(), 60);
    expect(await verify('frank@contoso.com', code)).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect((await t.admin('GET', '/v1/admin/users/frank@contoso.com/methods?tenant=default')).body).toEqual({ methods: [] });

    const assigned = await t.admin('POST', '/v1/admin/tokens/CSV-INV/assign?tenant=default', { username: 'Frank@contoso.com' });
    expect(assigned.status).toBe(200);
    expect(assigned.body).toMatchObject({ serial: 'CSV-INV', username: 'frank@contoso.com', otp_kind: 'totp', period: 60 });
    expect((await t.admin('GET', '/v1/admin/tokens?tenant=default&unassigned=true')).body).toEqual({ tokens: [] });
    expect(await verify('frank@contoso.com', code)).toEqual({ result: 'approved', reason: 'approved' });
    expect((await t.admin('GET', '/v1/admin/users/frank@contoso.com?tenant=default')).body.mfa_state).toBe('enforced');

    expect(await t.admin('POST', '/v1/admin/tokens/CSV-INV/assign?tenant=default', { username: 'carol@contoso.com' })).toEqual({
      status: 409,
      body: { error: { code: 'CONFLICT', message: 'token CSV-INV is already assigned; unassign it first' } },
    });
    expect(await t.admin('POST', '/v1/admin/tokens/CSV-NOPE/assign?tenant=default', { username: 'carol@contoso.com' })).toEqual({
      status: 404,
      body: { error: { code: 'NOT_FOUND', message: 'token CSV-NOPE not found' } },
    });
    expect((await t.admin('POST', '/v1/admin/tokens/CSV-INV/assign?tenant=default', {})).body).toEqual({ error: { code: 'INVALID_INPUT', message: 'username: is required' } });

    const unassigned = await t.admin('POST', '/v1/admin/tokens/CSV-INV/unassign?tenant=default');
    expect(unassigned.status).toBe(200);
    expect(unassigned.body).toMatchObject({ serial: 'CSV-INV', username: null });
    expect(((await t.admin('GET', '/v1/admin/tokens?tenant=default&unassigned=true')).body.tokens as { serial: string }[]).map((x) => x.serial)).toEqual(['CSV-INV']);
    expect((await t.admin('GET', '/v1/admin/users/frank@contoso.com/methods?tenant=default')).body).toEqual({ methods: [] });
    t.clock.advance(60_000);
    expect(await verify('frank@contoso.com', totpFromOathtool(secretInventory, t.clock.ms(), 60))).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect((await t.admin('POST', '/v1/admin/tokens/CSV-INV/unassign?tenant=default')).status).toBe(409);
  });

  it('re-importing a serial already in the tenant refuses that line and changes nothing', async () => {
    const before = (await t.admin('GET', '/v1/admin/tokens?tenant=default')).body;
    const again = await t.admin('POST', '/v1/admin/tokens/import?tenant=default', `${HEADER}\ncarol@contoso.com,CSV-30,${newSecret()},30,Other,Model`);
    expect(again).toEqual({ status: 200, body: { format: 'csv', imported: [], refused: [{ position: 'line 2', reason: 'serial number CSV-30 is already in this tenant' }] } });
    expect((await t.admin('GET', '/v1/admin/tokens?tenant=default')).body).toEqual(before);
    // The stored token keeps its own secret.
    t.clock.advance(30_000);
    expect(await verify('carol@contoso.com', totpFromOathtool(secret30, t.clock.ms(), 30))).toEqual({ result: 'approved', reason: 'approved' });
  });

  it('a file that cannot be read is refused whole with 400 INVALID_FILE, and the token count is unchanged', async () => {
    const before = await tokenSerials();
    const goodLine = `carol@contoso.com,CSV-NEW,${newSecret()},30,Contoso,HardwareKey`;
    const noHeader = await t.admin('POST', '/v1/admin/tokens/import?tenant=default', `${goodLine}\n`);
    expect(noHeader).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_FILE', message: 'the first line must be the header "upn,serial number,secret key,time interval,manufacturer,model"' } },
    });
    const brokenQuote = await t.admin('POST', '/v1/admin/tokens/import?tenant=default', `${HEADER}\n${goodLine}\ncarol@contoso.com,"CSV-Q,${newSecret()},30,Contoso,HardwareKey\n`);
    expect(brokenQuote).toEqual({ status: 400, body: { error: { code: 'INVALID_FILE', message: 'the token file is not valid CSV: Quote Not Closed at line 3' } } });
    expect(await t.admin('POST', '/v1/admin/tokens/import?tenant=default', '  \n')).toEqual({ status: 400, body: { error: { code: 'INVALID_FILE', message: 'the token file is empty' } } });
    expect(await tokenSerials()).toEqual(before);
    expect(before).not.toContain('CSV-NEW');
  });

  it('concurrent imports of one serial number store it once; the others are told, never a 500', async () => {
    const csv = `${HEADER}\n,CSV-RACE,${newSecret()},30,Contoso,HardwareKey\n`;
    const results = await Promise.all(Array.from({ length: 5 }, async () => t.admin('POST', '/v1/admin/tokens/import?tenant=default', csv)));
    const outcomes = results.map((r) => (r.status === 200 ? (r.body.imported.length === 1 ? 'imported' : r.body.refused[0].reason) : `${r.status} ${r.body.error.code}`));
    expect(outcomes.filter((o) => o === 'imported')).toEqual(['imported']);
    for (const outcome of outcomes.filter((o) => o !== 'imported')) {
      expect(['serial number CSV-RACE is already in this tenant', '409 CONFLICT']).toContain(outcome);
    }
    expect((await tokenSerials()).filter((serial) => serial === 'CSV-RACE')).toEqual(['CSV-RACE']);
  });

  it('an unknown tenant is 404 and a body that is neither CSV nor XML is 415', async () => {
    expect((await t.admin('POST', '/v1/admin/tokens/import?tenant=nowhere', `${HEADER}\n`)).status).toBe(404);
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/admin/tokens/import?tenant=default',
      headers: { authorization: `Bearer ${t.adminKey}`, 'content-type': 'application/octet-stream' },
      payload: Buffer.from(`${HEADER}\n`),
    });
    expect(response.statusCode).toBe(415);
    expect(response.json()).toMatchObject({ error: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
  });
});

describe('PSKC import (RFC 6030)', () => {
  it('Figure 6 (AES-128-CBC, pre-shared key): without the key or with a wrong one nothing is stored; with X-Countersign-PSK the HOTP token imports and its codes verify', async () => {
    const figure6 = fixture('rfc6030-figure6.pskcxml');
    const before = await tokenSerials();

    expect(await importXml(figure6)).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_FILE', message: 'the file is encrypted with a pre-shared key (RFC 6030 §6.1): a pre-shared key is required: send it in the X-Countersign-PSK header (hex)' } },
    });
    expect(await importXml(figure6, { 'x-countersign-psk': '00112233445566778899aabbccddeeff' })).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_FILE', message: 'the pre-shared key is wrong: the MAC key does not decrypt' } },
    });
    expect(await importXml(figure6, { 'x-countersign-psk': 'not-hex' })).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_INPUT', message: 'x-countersign-psk: must be the pre-shared key in hex (32 hex digits for AES-128)' } },
    });
    expect(await tokenSerials()).toEqual(before);

    const imported = await importXml(figure6, { 'x-countersign-psk': FIGURE6_PSK });
    expect(imported).toEqual({ status: 200, body: { format: 'pskc', imported: [{ position: 'KeyPackage 1', id: expect.stringMatching(UUID), serial: '987654321', username: null }], refused: [] } });
    const tokenId = imported.body.imported[0].id as string;
    expect((await t.admin('GET', '/v1/admin/tokens?tenant=default&unassigned=true')).body.tokens).toContainEqual({
      id: tokenId,
      serial: '987654321',
      username: null,
      otp_kind: 'hotp',
      algorithm: 'SHA1',
      digits: 8,
      period: null,
      manufacturer: 'Manufacturer',
      model: null,
      created_at: expect.any(String),
    });

    // The file has no UserId: the token is assigned first.
    await addUser('pskc6@contoso.com');
    expect((await t.admin('POST', `/v1/admin/tokens/${tokenId}/assign?tenant=default`, { username: 'pskc6@contoso.com' })).body).toMatchObject({ id: tokenId, username: 'pskc6@contoso.com' });

    // Figure 6 declares 8 digits (ResponseFormat Length="8"): the RFC 4226 codes of counters
    // 0, 1, 2 are 84755224, 94287082, 37359152, whose last six digits are 755224, 287082, 359152.
    const codes = [0, 1, 2].map((c) => hotpFromOathtool(RFC4226_KEY_HEX, c, 8));
    expect(codes).toEqual(['84755224', '94287082', '37359152']);
    expect(codes.map((c) => c.slice(2))).toEqual(RFC4226_CODES.slice(0, 3));
    expect(await verify('pskc6@contoso.com', '755224')).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect(await verify('pskc6@contoso.com', '84755224')).toEqual({ result: 'approved', reason: 'approved' });
    expect(await verify('pskc6@contoso.com', '84755224')).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect(await verify('pskc6@contoso.com', '94287082')).toEqual({ result: 'approved', reason: 'approved' });
    expect(await verify('pskc6@contoso.com', '37359152')).toEqual({ result: 'approved', reason: 'approved' });
  });

  it('Figure 7 (PBKDF2 from a password) imports with X-Countersign-PSKC-Password: qwerty, and not without it or with a wrong one', async () => {
    // A tenant of its own: every RFC 6030 figure uses the serial number 987654321.
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'pskc-password' })).status).toBe(201);
    const application = await t.admin('POST', '/v1/admin/applications?tenant=pskc-password', { name: 'vpn' });
    expect(application.status).toBe(201);
    await addUser('pskc7@contoso.com', 'enforced', 'pskc-password');
    const figure7 = fixture('rfc6030-figure7.pskcxml');

    expect(await importXml(figure7, {}, 'pskc-password')).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_FILE', message: 'the file is encrypted with a key derived from a password (PBKDF2, RFC 6030 §6.2): a password is required: send it in the X-Countersign-PSKC-Password header' } },
    });
    expect(await importXml(figure7, { 'x-countersign-pskc-password': 'qwertz' }, 'pskc-password')).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_FILE', message: 'the password is wrong: the MAC key does not decrypt' } },
    });
    expect(await tokenSerials('pskc-password')).toEqual([]);

    const imported = await importXml(figure7, { 'x-countersign-pskc-password': 'qwerty' }, 'pskc-password');
    expect(imported).toEqual({ status: 200, body: { format: 'pskc', imported: [{ position: 'KeyPackage 1', id: expect.stringMatching(UUID), serial: '987654321', username: null }], refused: [] } });
    expect((await t.admin('POST', '/v1/admin/tokens/987654321/assign?tenant=pskc-password', { username: 'pskc7@contoso.com' })).status).toBe(200);
    expect(await verify('pskc7@contoso.com', hotpFromOathtool(RFC4226_KEY_HEX, 0, 8), application.body.api_key as string)).toEqual({ result: 'approved', reason: 'approved' });

    // Again: the serial is taken now.
    expect(await importXml(figure7, { 'x-countersign-pskc-password': 'qwerty' }, 'pskc-password')).toEqual({
      status: 200,
      body: { format: 'pskc', imported: [], refused: [{ position: 'KeyPackage 1', reason: 'serial number 987654321 is already in this tenant' }] },
    });
  });

  it('Figure 3: a Key UserId given as a distinguished name (UID=jsmith,…) assigns the token at once', async () => {
    expect((await t.admin('POST', '/v1/admin/tenants', { name: 'pskc-dn' })).status).toBe(201);
    const application = await t.admin('POST', '/v1/admin/applications?tenant=pskc-dn', { name: 'vpn' });
    await addUser('jsmith', 'enforced', 'pskc-dn');
    const imported = await importXml(fixture('rfc6030-figure3.pskcxml'), {}, 'pskc-dn');
    expect(imported).toEqual({ status: 200, body: { format: 'pskc', imported: [{ position: 'KeyPackage 1', id: expect.stringMatching(UUID), serial: '987654321', username: 'jsmith' }], refused: [] } });
    expect(await verify('jsmith', hotpFromOathtool(RFC4226_KEY_HEX, 0, 8), application.body.api_key as string)).toEqual({ result: 'approved', reason: 'approved' });
  });
});

describe('HOTP look-ahead and resync', () => {
  it('OTP-07: look-ahead 10 — a code at counter+10 verifies, counter+11 does not; codes at or below the last counter are refused', async () => {
    await addUser('hotp-ahead@contoso.com');
    const imported = await importXml(plainHotpPskc('HOTP-AHEAD', 'hotp-ahead@contoso.com'));
    expect(imported.body).toEqual({ format: 'pskc', imported: [{ position: 'KeyPackage 1', id: expect.stringMatching(UUID), serial: 'HOTP-AHEAD', username: 'hotp-ahead@contoso.com' }], refused: [] });
    const user = 'hotp-ahead@contoso.com';
    expect(Array.from({ length: 10 }, (_, c) => hotpFromOathtool(RFC4226_KEY_HEX, c))).toEqual(RFC4226_CODES);

    // The counter is 0: counter+11 is one past the look-ahead window.
    expect(await verify(user, hotpFromOathtool(RFC4226_KEY_HEX, 11))).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect(await verify(user, hotpFromOathtool(RFC4226_KEY_HEX, 10))).toEqual({ result: 'approved', reason: 'approved' });
    // The counter is now 11: codes 0…10 are spent, 11 is next.
    expect(await verify(user, RFC4226_CODES[9] ?? '')).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect(await verify(user, hotpFromOathtool(RFC4226_KEY_HEX, 10))).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect(await verify(user, hotpFromOathtool(RFC4226_KEY_HEX, 22))).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect(await verify(user, hotpFromOathtool(RFC4226_KEY_HEX, 21))).toEqual({ result: 'approved', reason: 'approved' });
    expect(await verify(user, hotpFromOathtool(RFC4226_KEY_HEX, 22))).toEqual({ result: 'approved', reason: 'approved' });
  });

  it('OTP-07: resync with two consecutive codes far ahead (50, 51) moves the counter: 52 then verifies and 51 is refused', async () => {
    await addUser('hotp-resync@contoso.com');
    const user = 'hotp-resync@contoso.com';
    const imported = await importXml(plainHotpPskc('HOTP-RESYNC', user));
    const tokenId = imported.body.imported[0].id as string;
    const at = (counter: number): string => hotpFromOathtool(RFC4226_KEY_HEX, counter);
    const resync = async (body: Record<string, unknown>) => t.admin('POST', `/v1/admin/tokens/${tokenId}/resync?tenant=default`, body);

    // Far beyond the look-ahead, 52 is refused before the resync.
    expect(await verify(user, at(52))).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect(await resync({ code1: at(50), code2: at(52) })).toEqual({
      status: 400,
      body: { error: { code: 'INVALID_INPUT', message: 'code2: the two codes are not consecutive codes of token HOTP-RESYNC within 1000 counters' } },
    });
    expect(await resync({ code1: at(51), code2: at(50) })).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT' } } });
    expect(await resync({ code1: at(50) })).toEqual({ status: 400, body: { error: { code: 'INVALID_INPUT', message: 'code2: is required' } } });
    expect(await resync({ code1: at(50), code2: 'x' })).toEqual({ status: 400, body: { error: { code: 'INVALID_INPUT', message: 'code: must be 6 or 8 digits' } } });
    // None of the refused attempts moved the counter.
    expect(await verify(user, at(0))).toEqual({ result: 'approved', reason: 'approved' });

    const done = await resync({ code1: at(50), code2: at(51) });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ id: tokenId, serial: 'HOTP-RESYNC', username: user, otp_kind: 'hotp' });
    expect(await verify(user, at(51))).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect(await verify(user, at(50))).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect(await verify(user, at(52))).toEqual({ result: 'approved', reason: 'approved' });
    // The same pair cannot resync again: its codes are spent.
    expect((await resync({ code1: at(50), code2: at(51) })).status).toBe(400);
  });

  it('resync of a TOTP token is 409; of an unknown token 404', async () => {
    expect(await t.admin('POST', '/v1/admin/tokens/CSV-30/resync?tenant=default', { code1: '123456', code2: '234567' })).toEqual({
      status: 409,
      body: { error: { code: 'CONFLICT', message: 'resync applies to HOTP tokens; TOTP tokens follow the clock' } },
    });
    expect((await t.admin('POST', '/v1/admin/tokens/NO-SUCH/resync?tenant=default', { code1: '123456', code2: '234567' })).status).toBe(404);
  });
});

describe('DELETE token', () => {
  it('deletes a token: it leaves the list and the user’s methods, and its codes stop verifying', async () => {
    await addUser('hotp-delete@contoso.com');
    const user = 'hotp-delete@contoso.com';
    const imported = await importXml(plainHotpPskc('HOTP-DELETE', user));
    const tokenId = imported.body.imported[0].id as string;
    expect(await verify(user, RFC4226_CODES[0] ?? '')).toEqual({ result: 'approved', reason: 'approved' });
    expect(((await t.admin('GET', `/v1/admin/users/${user}/methods?tenant=default`)).body.methods as { id: string }[]).map((m) => m.id)).toEqual([tokenId]);

    expect(await t.admin('DELETE', `/v1/admin/tokens/${tokenId}?tenant=default`)).toEqual({ status: 204, body: undefined });
    expect(await tokenSerials()).not.toContain('HOTP-DELETE');
    expect((await t.admin('GET', `/v1/admin/users/${user}/methods?tenant=default`)).body).toEqual({ methods: [] });
    expect(await verify(user, RFC4226_CODES[1] ?? '')).toEqual({ result: 'denied', reason: 'invalid_code' });
    expect(await t.admin('DELETE', `/v1/admin/tokens/${tokenId}?tenant=default`)).toEqual({ status: 404, body: { error: { code: 'NOT_FOUND', message: `token ${tokenId} not found` } } });

    // Its serial is free again.
    const again = await importXml(plainHotpPskc('HOTP-DELETE', user));
    expect(again.body.imported.map((i: { serial: string }) => i.serial)).toEqual(['HOTP-DELETE']);
  });
});

describe('default method', () => {
  it('unassigning or deleting the default token (or method) makes the user’s oldest other active method the default', async () => {
    const user = 'default-moves@contoso.com';
    await addUser(user);
    const ids: string[] = [];
    for (const serial of ['DEFAULT-1', 'DEFAULT-2', 'DEFAULT-3', 'DEFAULT-4']) {
      ids.push((await importXml(plainHotpPskc(serial, user))).body.imported[0].id as string);
      t.clock.advance(1_000); // distinct creation times: "oldest" is well defined
    }
    const [id1, id2, id3, id4] = ids;
    const defaults = async () =>
      ((await t.admin('GET', `/v1/admin/users/${user}/methods?tenant=default`)).body.methods as { id: string; default: boolean }[]).map((m) => [m.id, m.default]);
    expect(await defaults()).toEqual([
      [id1, true],
      [id2, false],
      [id3, false],
      [id4, false],
    ]);
    expect((await t.admin('POST', '/v1/admin/tokens/DEFAULT-1/unassign?tenant=default')).status).toBe(200);
    expect(await defaults()).toEqual([
      [id2, true],
      [id3, false],
      [id4, false],
    ]);
    expect((await t.admin('DELETE', '/v1/admin/tokens/DEFAULT-2?tenant=default')).status).toBe(204);
    expect(await defaults()).toEqual([
      [id3, true],
      [id4, false],
    ]);
    expect((await t.admin('DELETE', `/v1/admin/users/${user}/methods/${id3 ?? ''}?tenant=default`)).status).toBe(204);
    expect(await defaults()).toEqual([[id4, true]]);
    expect((await t.api('POST', '/v1/preauth', { username: user })).body.methods).toEqual([{ id: id4, type: 'oath', label: 'Acme', default: true }]);
  });
});

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { Secret } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/app.js';
import { verifyAuditChain } from '../../src/store/audit-log.js';
import type { AuditEventsTable } from '../../src/store/schema.js';
import { createTestApp, type TestApp } from '../support/harness.js';
import { hotpAt, totpAt } from '../support/otp.js';

/**
 * The audit log and the service log (SECURITY.md LOG-01…04): tampering is found and located,
 * nothing secret is ever written, log lines cannot be forged, times are UTC.
 */
type Reply = Awaited<ReturnType<TestApp['api']>>;
type AuditRow = { [K in keyof AuditEventsTable]: AuditEventsTable[K] };

const STEP = 30_000;
const ROOT = resolve(import.meta.dirname, '../..');
const fixture = (name: string): string => readFileSync(join(ROOT, 'src/methods/oath/fixtures', name), 'utf8');
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const RFC4226_KEY = Buffer.from('12345678901234567890');
const FIGURE6_PSK = '12345678901234567890123456789012';
const FIGURE7_PASSWORD = 'qwerty';

const base32 = (bytes: Uint8Array): string => new Secret({ buffer: Uint8Array.from(bytes).buffer }).base32;

/** The real CLI on a test store, as its own process, with no COUNTERSIGN_* variable from this one. */
async function runCli(app: TestApp, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined && !name.startsWith('COUNTERSIGN_')) env[name] = value;
  const store = ['--data-dir', app.location.dataDir, ...(app.location.databaseUrl === undefined ? [] : ['--database-url', app.location.databaseUrl])];
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [join(ROOT, 'bin/countersign.js'), ...args, ...store], { cwd: app.location.dataDir, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

async function importTokens(t: TestApp, body: string, contentType: string, headers: Record<string, string> = {}): Promise<Reply> {
  return t.upload('/v1/admin/tokens/import?tenant=default', body, contentType, headers);
}

describe('LOG-03: the audit log is tamper-evident', () => {
  let t: TestApp;
  let records: number;

  beforeAll(async () => {
    t = await createTestApp();
    // A dozen or so records from ordinary admin work.
    for (let i = 0; i < 8; i++) expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: `audited${i}@contoso.com` })).status).toBe(201);
    records = Number((await t.services.db.selectFrom('audit_head').select('seq').executeTakeFirstOrThrow()).seq);
    expect(records).toBeGreaterThanOrEqual(10);
  });
  afterAll(async () => {
    await t.close();
  });

  const row = async (seq: number): Promise<AuditRow> => {
    const found = await t.services.db.selectFrom('audit_events').selectAll().where('seq', '=', seq).executeTakeFirstOrThrow();
    return { ...found, seq: Number(found.seq), at: Number(found.at) };
  };
  const check = () => verifyAuditChain(t.services.db, t.services.keyring.auditKey);
  const cli = async () => {
    const result = await runCli(t, ['audit', 'verify']);
    return { code: result.code, stdout: result.stdout.trim() };
  };

  /** Tampers, checks with the library, the CLI and the admin API, then undoes the tampering. */
  async function expectBrokenAt(tamper: () => Promise<() => Promise<void>>, firstBadSeq: number, problem: string, withCli = true): Promise<void> {
    const undo = await tamper();
    try {
      expect(await check()).toEqual({ ok: false, records: firstBadSeq - 1, firstBadSeq, problem });
      if (withCli) expect(await cli()).toEqual({ code: 1, stdout: `audit log BROKEN at record ${firstBadSeq}: ${problem} (${firstBadSeq - 1} records verified before it)` });
      expect(await t.admin('GET', '/v1/admin/audit/verify')).toEqual({ status: 200, body: { ok: false, records: firstBadSeq - 1, first_bad_seq: firstBadSeq, problem } });
    } finally {
      await undo();
    }
    expect(await check()).toEqual({ ok: true, records });
  }

  const editColumn = (seq: number, change: Partial<AuditRow>) => async () => {
    const before = await row(seq);
    await t.services.db.updateTable('audit_events').set(change).where('seq', '=', seq).execute();
    return async () => {
      await t.services.db.updateTable('audit_events').set(before).where('seq', '=', seq).execute();
    };
  };

  const deleteRow = (seq: number) => async () => {
    const before = await row(seq);
    await t.services.db.deleteFrom('audit_events').where('seq', '=', seq).execute();
    return async () => {
      await t.services.db.insertInto('audit_events').values(before).execute();
    };
  };

  it('LOG-03: an intact log verifies: the library, `countersign audit verify` (exit 0) and the admin API agree', async () => {
    expect(await check()).toEqual({ ok: true, records });
    expect(await cli()).toEqual({ code: 0, stdout: `audit log intact: ${records} records` });
    expect(await t.admin('GET', '/v1/admin/audit/verify')).toEqual({ status: 200, body: { ok: true, records } });
  });

  it("LOG-03: one row's detail edited → the verifier names exactly that record; the CLI exits 1 naming it", async () => {
    const before = await row(5);
    const forged = JSON.stringify({ ...(JSON.parse(before.detail) as Record<string, unknown>), username: 'someone-else@contoso.com' });
    await expectBrokenAt(editColumn(5, { detail: forged }), 5, 'record 5 was altered');
  });

  it('LOG-03: an edited time, actor, action or target is found too', async () => {
    const before = await row(6);
    await expectBrokenAt(editColumn(6, { at: before.at - 86_400_000 }), 6, 'record 6 was altered');
    await expectBrokenAt(editColumn(6, { actor: 'system' }), 6, 'record 6 was altered', false);
    await expectBrokenAt(editColumn(6, { action: 'user.updated' }), 6, 'record 6 was altered', false);
    await expectBrokenAt(editColumn(6, { target: null }), 6, 'record 6 was altered', false);
  });

  it('LOG-03: an edit whose hash is recomputed without the audit key is still found', async () => {
    const before = await row(4);
    const detail = JSON.stringify({ forged: true });
    // Whoever writes the database does not have the HMAC key (it is in keys.json): a guessed key.
    const { createHmac } = await import('node:crypto');
    const hash = createHmac('sha256', randomBytes(32)).update(JSON.stringify([before.seq, before.at, before.tenant_id, before.actor, before.action, before.target, detail, before.prev_hash])).digest('hex');
    await expectBrokenAt(editColumn(4, { detail, hash }), 4, 'record 4 was altered');
  });

  it('LOG-03: two rows edited → the first of them is named', async () => {
    const seven = await row(7);
    const three = await row(3);
    await expectBrokenAt(
      async () => {
        const undoSeven = await editColumn(7, { detail: '{}' })();
        const undoThree = await editColumn(3, { detail: `${three.detail} ` })();
        return async () => {
          await undoThree();
          await undoSeven();
        };
      },
      3,
      'record 3 was altered',
    );
    expect((await row(7)).detail).toBe(seven.detail);
  });

  it('LOG-03: a middle row deleted → the verifier names it as missing', async () => {
    await expectBrokenAt(deleteRow(5), 5, 'record 5 is missing (deleted)');
  });

  it('LOG-03: the first row deleted → record 1 is missing', async () => {
    await expectBrokenAt(deleteRow(1), 1, 'record 1 is missing (deleted)');
  });

  it('LOG-03: the last row deleted → the log is found to end early at that record', async () => {
    await expectBrokenAt(deleteRow(records), records, `record ${records} is missing (the log ends early)`);
  });

  it('LOG-03: two rows swapped (reordered) → the first out of place is named', async () => {
    await expectBrokenAt(
      async () => {
        // Every column but seq: the records change places.
        const fields = (r: AuditRow) => ({ at: r.at, tenant_id: r.tenant_id, actor: r.actor, action: r.action, target: r.target, detail: r.detail, prev_hash: r.prev_hash, hash: r.hash });
        const [fiveRest, sixRest] = [fields(await row(5)), fields(await row(6))];
        await t.services.db.updateTable('audit_events').set(sixRest).where('seq', '=', 5).execute();
        await t.services.db.updateTable('audit_events').set(fiveRest).where('seq', '=', 6).execute();
        return async () => {
          await t.services.db.updateTable('audit_events').set(fiveRest).where('seq', '=', 5).execute();
          await t.services.db.updateTable('audit_events').set(sixRest).where('seq', '=', 6).execute();
        };
      },
      5,
      'record 5 does not follow record 4',
    );
  });

  it('LOG-03: a forged record appended after the last one is found', async () => {
    await expectBrokenAt(
      async () => {
        const last = await row(records);
        const forged: AuditRow = { ...last, seq: records + 1, action: 'user.deleted', detail: '{}', prev_hash: last.hash, hash: randomBytes(32).toString('hex') };
        await t.services.db.insertInto('audit_events').values(forged).execute();
        return async () => {
          await t.services.db.deleteFrom('audit_events').where('seq', '=', records + 1).execute();
        };
      },
      records + 1,
      `record ${records + 1} was altered`,
    );
  });
});

describe('LOG-01: no code, seed, password or key in a log line or an audit record', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  /** The characters that encode only the seed's bytes in Base32 / Base64 at each alignment, plus hex. */
  function encodingsOf(seed: Buffer): string[] {
    const out = [seed.toString('hex'), seed.toString('hex').toUpperCase(), seed.toString('latin1')];
    for (let k = 0; k < 5; k++) {
      const core = base32(Buffer.concat([Buffer.alloc(k), seed])).slice(Math.ceil((8 * k) / 5), Math.floor((8 * (k + seed.length)) / 5));
      out.push(core, core.toLowerCase());
    }
    for (let k = 0; k < 3; k++) {
      const bytes = Buffer.concat([Buffer.alloc(k), seed]);
      const cut = (text: string) => text.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + seed.length)) / 6));
      out.push(cut(bytes.toString('base64')), cut(bytes.toString('base64url')));
    }
    return out;
  }

  it('LOG-01: a whole flow (enroll, activate, good and bad codes, CSV and PSKC imports, resync, new keys) leaves no secret in t.logs or audit_events', async () => {
    const codes = new Set<string>();
    const secrets: { what: string; text: string }[] = [];
    const use = (code: string): string => (codes.add(code), code);
    const api = async (method: 'GET' | 'POST', url: string, body?: unknown): Promise<Reply> => t.api(method, url, body);

    // Keys: the harness's own, an application and an administrator key made through the API.
    const application = await t.admin('POST', '/v1/admin/applications?tenant=default', { name: 'vpn' });
    const adminKey = await t.admin('POST', '/v1/admin/admin-keys', { name: 'helpdesk' });
    expect([application.status, adminKey.status]).toEqual([201, 201]);
    for (const key of [t.adminKey, t.appKey, application.body.api_key as string, adminKey.body.api_key as string]) secrets.push({ what: 'an API key', text: key });

    // TOTP: enroll, a wrong activation code, then the right one; good, bad and replayed codes.
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'flow@contoso.com', mfa_state: 'enabled' })).status).toBe(201);
    const enrolled = await t.admin('POST', '/v1/admin/users/flow@contoso.com/methods/totp?tenant=default', { digits: 8, algorithm: 'SHA256' });
    expect(enrolled.status).toBe(201);
    const secret: string = enrolled.body.secret;
    const seed = Buffer.from(Secret.fromBase32(secret).bytes);
    const totp = (offset = 0) => totpAt(secret, t.clock.ms() + offset * STEP, { digits: 8, algorithm: 'SHA256' });
    const methodId: string = enrolled.body.method.id;
    expect((await t.admin('POST', `/v1/admin/users/flow@contoso.com/methods/${methodId}/activate?tenant=default`, { code: use(totp(5)) })).status).toBe(400);
    expect((await t.admin('POST', `/v1/admin/users/flow@contoso.com/methods/${methodId}/activate?tenant=default`, { code: use(totp()) })).status).toBe(200);
    t.clock.advance(STEP);
    const decisions: string[] = [];
    for (const code of [totp(), totp(), totp(7), totp(-9)]) decisions.push((await api('POST', '/v1/verify', { username: 'flow@contoso.com', code: use(code), ip: '192.0.2.10' })).body.result);
    expect(decisions).toEqual(['approved', 'denied', 'denied', 'denied']);
    t.clock.advance(STEP);
    const challenge = await api('POST', '/v1/challenges', { username: 'flow@contoso.com', method: 'totp', context: { app: 'VPN', ip: '192.0.2.11' } });
    expect((await api('POST', `/v1/challenges/${challenge.body.id}/answer`, { code: use(totp(4)) })).body.status).toBe('pending');
    expect((await api('POST', `/v1/challenges/${challenge.body.id}/answer`, { code: use(totp()) })).body.status).toBe('approved');
    // A malformed code is refused without being echoed.
    expect((await api('POST', '/v1/verify', { username: 'flow@contoso.com', code: use('12345a78') })).body).toEqual({ error: { code: 'INVALID_INPUT', message: 'code: must be 6 or 8 digits' } });
    secrets.push(...encodingsOf(seed).map((text) => ({ what: 'the TOTP seed', text })));

    // Azure CSV: one good token, one refused line with a bad secret.
    const csvSeed = randomBytes(20);
    const badSecret = 'NOT-BASE32-SECRET-1!';
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'csv@contoso.com' })).status).toBe(201);
    const csv = await importTokens(t, `upn,serial number,secret key,time interval,manufacturer,model\ncsv@contoso.com,CSV-9,${base32(csvSeed)},30,Contoso,K\n,CSV-10,${badSecret},30,Contoso,K\n`, 'text/csv');
    expect(csv.body.refused).toEqual([{ position: 'line 3', reason: 'secret key is not valid Base32' }]);
    expect((await api('POST', '/v1/verify', { username: 'csv@contoso.com', code: use(totpAt(base32(csvSeed), t.clock.ms())) })).body.result).toBe('approved');
    secrets.push(...encodingsOf(csvSeed).map((text) => ({ what: 'the CSV seed', text })), { what: 'a refused CSV secret', text: badSecret });

    // PSKC: plain (Figure 3), pre-shared key (Figure 6), password (Figure 7), and a wrong password.
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'jsmith' })).status).toBe(201);
    const plain = await importTokens(t, fixture('rfc6030-figure3.pskcxml'), 'application/xml');
    expect(plain.body.imported).toHaveLength(1);
    const aes = await importTokens(t, fixture('rfc6030-figure6.pskcxml').replace('<SerialNo>987654321</SerialNo>', '<SerialNo>AES-1</SerialNo>'), 'application/xml', { 'x-countersign-psk': FIGURE6_PSK });
    const pbkdf2 = await importTokens(t, fixture('rfc6030-figure7.pskcxml').replace('<pskc:SerialNo>987654321</pskc:SerialNo>', '<pskc:SerialNo>PBKDF2-1</pskc:SerialNo>'), 'application/xml', {
      'x-countersign-pskc-password': FIGURE7_PASSWORD,
    });
    const wrongPassword = await importTokens(t, fixture('rfc6030-figure7.pskcxml').replace('<pskc:SerialNo>987654321</pskc:SerialNo>', '<pskc:SerialNo>PBKDF2-2</pskc:SerialNo>'), 'application/xml', {
      'x-countersign-pskc-password': 'hunter2-wrong',
    });
    expect([aes.body.imported.length, pbkdf2.body.imported.length]).toEqual([1, 1]);
    expect(wrongPassword).toEqual({ status: 400, body: { error: { code: 'INVALID_FILE', message: 'no ValueMAC verifies: the password is wrong or the file was altered' } } });
    secrets.push(
      ...encodingsOf(RFC4226_KEY).map((text) => ({ what: 'the PSKC key', text })),
      { what: 'the PSKC pre-shared key', text: FIGURE6_PSK },
      { what: 'the PSKC password', text: FIGURE7_PASSWORD },
      { what: 'the wrong PSKC password', text: 'hunter2-wrong' },
    );
    // HOTP (Figure 3 went to jsmith, 8 digits): a good code, a replay, then a resync with two codes.
    const hotp = (counter: number) => hotpAt(base32(RFC4226_KEY), counter, 8);
    expect((await api('POST', '/v1/verify', { username: 'jsmith', code: use(hotp(0)) })).body.result).toBe('approved');
    expect((await api('POST', '/v1/verify', { username: 'jsmith', code: use(hotp(0)) })).body.result).toBe('denied');
    expect((await t.admin('POST', '/v1/admin/tokens/987654321/resync?tenant=default', { code1: use(hotp(40)), code2: use(hotp(42)) })).status).toBe(400);
    expect((await t.admin('POST', '/v1/admin/tokens/987654321/resync?tenant=default', { code1: use(hotp(40)), code2: use(hotp(41)) })).status).toBe(200);

    // Every decision is audited (LOG-01 "log every authentication decision")…
    const audit = (await sql<AuditRow>`select * from audit_events order by seq`.execute(t.services.db)).rows;
    const verifications = audit.filter((r) => r.action === 'verification.approved' || r.action === 'verification.denied');
    expect(verifications).toHaveLength(9);
    expect(audit.filter((r) => r.action === 'otp.replay')).toHaveLength(2);

    // …and nothing secret is in a log line or an audit record.
    expect(t.logs.length).toBeGreaterThan(20);
    const logText = t.logs.join('\n');
    // Hashes are HMAC output (hex): left out of the code search, where a 6-digit run could occur by chance.
    const auditText = audit.map((r) => [r.seq, r.at, r.tenant_id, r.actor, r.action, r.target, r.detail].join('\t')).join('\n');
    const auditAll = audit.map((r) => Object.values(r).join('\t')).join('\n');
    const hits: string[] = [];
    for (const code of codes) {
      const standalone = new RegExp(`(?<![0-9])${code}(?![0-9])`);
      if (standalone.test(logText)) hits.push(`code ${code} in the log`);
      if (standalone.test(auditText)) hits.push(`code ${code} in the audit log`);
    }
    for (const { what, text } of secrets) {
      if (logText.includes(text)) hits.push(`${what} in the log`);
      if (auditAll.includes(text)) hits.push(`${what} in the audit log`);
    }
    expect(codes.size).toBe(13);
    expect(hits).toEqual([]);
    // The search does find what is there: usernames and method ids are in the audit records.
    expect([auditText.includes('flow@contoso.com'), auditText.includes(methodId)]).toEqual([true, true]);
  });
});

describe('LOG-02: log fields cannot forge lines', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  const forged = 'mallory@contoso.com\r\n{"level":30,"msg":"user admin logged in"}';

  it('LOG-02: a username containing \\r\\n is refused 400 everywhere a username is taken; every log line is one JSON object', async () => {
    const usernameError = { code: 'INVALID_INPUT', message: 'username: must be 1–256 characters without spaces or control characters (e.g. alice@contoso.com)' };
    expect(await t.admin('POST', '/v1/admin/users?tenant=default', { username: forged })).toEqual({ status: 400, body: { error: usernameError } });
    expect(await t.api('POST', '/v1/preauth', { username: forged })).toEqual({ status: 400, body: { error: usernameError } });
    expect(await t.api('POST', '/v1/challenges', { username: forged, method: 'totp' })).toEqual({ status: 400, body: { error: usernameError } });
    expect(await t.api('POST', '/v1/verify', { username: forged, code: '123456' })).toEqual({ status: 400, body: { error: usernameError } });
    const imported = await t.admin('POST', '/v1/admin/users/import?tenant=default', `username,display name,email,phone,state\n"${forged.replaceAll('"', '""')}",Mallory,,,enabled\n`);
    expect(imported.status).toBe(200);
    expect(imported.body.created).toBe(0);
    expect(imported.body.refused).toEqual([{ line: 2, reason: usernameError.message }]);
    // Other free-text fields that reach logs and audit records refuse control characters too.
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'ok@contoso.com', display_name: 'Ok\r\nForged' })).body).toEqual({
      error: { code: 'INVALID_INPUT', message: 'display_name: must be at most 256 characters without control characters' },
    });
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'ok@contoso.com' })).status).toBe(201);
    expect((await t.api('POST', '/v1/challenges', { username: 'ok@contoso.com', method: 'totp', context: { app: 'VPN\r\nforged' } })).body).toEqual({
      error: { code: 'INVALID_INPUT', message: 'context.app: must be text of at most 200 characters' },
    });
    // A CR LF in a path reaches the log only percent-encoded.
    expect((await t.admin('GET', '/v1/admin/users/mallory%0D%0A%7B%22level%22%3A30%7D?tenant=default')).status).toBe(404);

    expect(t.logs.length).toBeGreaterThan(5);
    const unparsable = t.logs.filter((line) => {
      try {
        const parsed: unknown = JSON.parse(line);
        return typeof parsed !== 'object' || parsed === null || Array.isArray(parsed);
      } catch {
        return true;
      }
    });
    expect(unparsable).toEqual([]);
    expect(t.logs.filter((line) => line.includes('\r'))).toEqual([]);
    // No forged line: no line is the attacker's JSON.
    expect(t.logs.filter((line) => line.includes('"msg":"user admin logged in"'))).toEqual([]);
    // Nothing refused reached the store.
    expect((await t.services.db.selectFrom('users').select('username').execute()).map((u) => u.username)).toEqual(['ok@contoso.com']);
  });
});

describe('LOG-04: timestamps are UTC', () => {
  let t: TestApp;
  const tz = process.env['TZ'];
  beforeAll(async () => {
    // A local zone far from UTC, so a time formatted in local time would show.
    process.env['TZ'] = 'America/Los_Angeles';
    t = await createTestApp();
  });
  afterAll(async () => {
    await t.close();
    if (tz === undefined) delete process.env['TZ'];
    else process.env['TZ'] = tz;
  });

  it('LOG-04: audit `at` values and every timestamp of the API are ISO-8601 UTC (…Z), also under a non-UTC local zone', async () => {
    expect(new Date(0).getTimezoneOffset()).not.toBe(0);
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'utc@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    const enrolled = await t.admin('POST', '/v1/admin/users/utc@contoso.com/methods/totp?tenant=default', {});
    await t.admin('POST', `/v1/admin/users/utc@contoso.com/methods/${enrolled.body.method.id}/activate?tenant=default`, { code: totpAt(enrolled.body.secret, t.clock.ms()) });
    t.clock.advance(STEP);
    await t.api('POST', '/v1/verify', { username: 'utc@contoso.com', code: totpAt(enrolled.body.secret, t.clock.ms()) });
    // Lock the user so that locked_until is set.
    await t.admin('PATCH', '/v1/admin/settings?tenant=default', { lockout_threshold: 1 });
    await t.api('POST', '/v1/verify', { username: 'utc@contoso.com', code: '000000' });
    const challenge = await t.api('POST', '/v1/challenges', { username: 'utc@contoso.com', method: 'totp' });

    const user = (await t.admin('GET', '/v1/admin/users/utc@contoso.com?tenant=default')).body;
    const methods = (await t.admin('GET', '/v1/admin/users/utc@contoso.com/methods?tenant=default')).body.methods;
    const tenants = (await t.admin('GET', '/v1/admin/tenants')).body.tenants;
    const applications = (await t.admin('GET', '/v1/admin/applications?tenant=default')).body.applications;
    const audit = (await t.admin('GET', '/v1/admin/audit?tenant=default&limit=1000')).body.records;
    const times: string[] = [
      user.created_at,
      user.updated_at,
      user.locked_until,
      ...methods.flatMap((m: { created_at: string; last_used_at: string }) => [m.created_at, m.last_used_at]),
      ...tenants.map((x: { created_at: string }) => x.created_at),
      ...applications.map((x: { created_at: string }) => x.created_at),
      challenge.body.expires_at,
      ...audit.map((r: { at: string }) => r.at),
    ];
    expect(audit.length).toBeGreaterThanOrEqual(8);
    expect(times.filter((x) => typeof x !== 'string' || !ISO_UTC.test(x))).toEqual([]);
    // And they are the fake clock's times, not shifted by the local zone.
    expect(user.locked_until).toBe(new Date(t.clock.ms() + 15 * 60_000).toISOString());
    expect(challenge.body.expires_at).toBe(new Date(t.clock.ms() + 300_000).toISOString());
    // The CLI shows the same UTC times.
    const listed = await runCli(t, ['audit', 'list', '--tenant', 'default', '--json', '--limit', '1000']);
    expect(listed.code).toBe(0);
    const cliTimes = (JSON.parse(listed.stdout) as { at: string }[]).map((r) => r.at);
    expect(cliTimes).toEqual(audit.map((r: { at: string }) => r.at));
  });

  it("LOG-04: the service's logger writes ISO-8601 UTC times", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    const logger = createLogger({ logLevel: 'info' }, sink);
    logger.info({ event: 'test' }, 'a line');
    logger.flush();
    await new Promise((r) => setImmediate(r));
    expect(lines).toHaveLength(1);
    const parsed = JSON.parse(lines[0] ?? '{}') as { time: unknown; msg: unknown };
    expect(parsed.msg).toBe('a line');
    expect(typeof parsed.time === 'string' && ISO_UTC.test(parsed.time)).toBe(true);
  });
});

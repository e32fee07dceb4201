import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { Secret } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/http/server.js';
import { KEYRING_FILE, loadKeyring } from '../../src/store/keyring.js';
import { createSecretBox } from '../../src/store/secret-box.js';
import { createTestApp, createTestContext, DEFAULT_DIALECT, fakeClock, type TestApp, type TestContext } from '../support/harness.js';
import { hotpAt, totpAt } from '../support/otp.js';

/**
 * Seeds at rest (SECURITY.md OTP-10, KEY-01; issue 2 item 8): envelope encryption, what a dump
 * of the store holds, what a wrong key or an altered row does, and key rotation with the CLI.
 */
type Reply = Awaited<ReturnType<TestApp['api']>>;

const STEP = 30_000;
const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'bin/countersign.js');
const fixture = (name: string): string => readFileSync(join(ROOT, 'src/methods/oath/fixtures', name), 'utf8');
/** RFC 4226 Appendix D key: what PSKC Figures 3, 6 and 7 hold (plain, AES-128-CBC, PBKDF2). */
const RFC4226_KEY = Buffer.from('12345678901234567890');
const FIGURE6_PSK = '12345678901234567890123456789012';
const FIGURE7_PASSWORD = 'qwerty';

let t: TestApp;

interface Seeded {
  username: string;
  userId: string;
  methodId: string;
  seed: Buffer;
  /** Code for the current time (TOTP) or the next counter (HOTP). */
  code(): string;
}

/** Every seed that went into the store, and the users that own them. */
const users: Record<string, Seeded> = {};
const seeds: { name: string; bytes: Buffer }[] = [];

const base32 = (bytes: Uint8Array): string => new Secret({ buffer: Uint8Array.from(bytes).buffer }).base32;

async function importTokens(body: string, contentType: string, headers: Record<string, string> = {}): Promise<Reply> {
  return t.upload('/v1/admin/tokens/import?tenant=default', body, contentType, headers);
}

async function createUser(username: string): Promise<string> {
  const created = await t.admin('POST', '/v1/admin/users?tenant=default', { username, mfa_state: 'enforced' });
  expect(created.status).toBe(201);
  return created.body.id;
}

async function enrollTotp(username: string): Promise<Seeded> {
  const userId = await createUser(username);
  const enrolled = await t.admin('POST', `/v1/admin/users/${username}/methods/totp?tenant=default`, {});
  expect(enrolled.status).toBe(201);
  const secret: string = enrolled.body.secret;
  const activated = await t.admin('POST', `/v1/admin/users/${username}/methods/${enrolled.body.method.id}/activate?tenant=default`, { code: totpAt(secret, t.clock.ms()) });
  expect(activated.body.status).toBe('active');
  return { username, userId, methodId: enrolled.body.method.id, seed: Buffer.from(Secret.fromBase32(secret).bytes), code: () => totpAt(secret, t.clock.ms()) };
}

async function methodIdOf(username: string): Promise<string> {
  const listed = await t.admin('GET', `/v1/admin/users/${username}/methods?tenant=default`);
  expect(listed.body.methods).toHaveLength(1);
  return listed.body.methods[0].id;
}

const verify = (username: string, code: string, app: FastifyInstance = t.app): Promise<Reply> =>
  app.inject({ method: 'POST', url: '/v1/verify', headers: { authorization: `Bearer ${t.appKey}` }, payload: { username, code } }).then((r) => ({ status: r.statusCode, body: r.json() }));

const APPROVED = { status: 200, body: { result: 'approved', reason: 'approved' } };
const KEY_UNAVAILABLE = { status: 500, body: { error: { code: 'KEY_UNAVAILABLE', message: 'a sealed value does not open: wrong key or altered data' } } };

/** Moves to a fresh TOTP step, so that every TOTP user has an unused code. */
const nextStep = (): void => t.clock.advance(STEP);

beforeAll(async () => {
  t = await createTestApp();

  // An authenticator app (TOTP enrollment, seed from the server's CSPRNG).
  users['alice'] = await enrollTotp('alice@contoso.com');
  users['dave'] = await enrollTotp('dave@contoso.com');

  // Hardware tokens from the Azure CSV (two assigned, one left in the inventory).
  const csvSeeds = [randomBytes(20), randomBytes(20), randomBytes(32)];
  for (const name of ['bob@contoso.com', 'carol@contoso.com']) await createUser(name);
  const csv = [
    'upn,serial number,secret key,time interval,manufacturer,model',
    `bob@contoso.com,CSV-1,${base32(csvSeeds[0] ?? Buffer.alloc(0))},30,Contoso,Key30`,
    `carol@contoso.com,CSV-2,${base32(csvSeeds[1] ?? Buffer.alloc(0)).toLowerCase()},30,Contoso,Key30`,
    `,CSV-3,${base32(csvSeeds[2] ?? Buffer.alloc(0))},60,Contoso,Key60`,
  ].join('\n');
  const csvImport = await importTokens(`${csv}\n`, 'text/csv');
  expect(csvImport.status).toBe(200);
  expect(csvImport.body.imported).toHaveLength(3);
  for (const [i, name] of (['bob', 'carol'] as const).entries()) {
    const seed = csvSeeds[i] ?? Buffer.alloc(0);
    users[name] = { username: `${name}@contoso.com`, userId: '', methodId: await methodIdOf(`${name}@contoso.com`), seed, code: () => totpAt(base32(seed), t.clock.ms()) };
  }

  // PSKC: Figure 3 with a random seed (plain value), and Figures 3, 6, 7 with the RFC 4226 key
  // (plain, AES-128-CBC with a pre-shared key, PBKDF2 with a password). Serials made unique.
  const pskcSeed = randomBytes(20);
  const figure3 = fixture('rfc6030-figure3.pskcxml').replace(/^\s*<UserId>.*<\/UserId>\n/gm, '');
  const plainRandom = figure3.replace('<SerialNo>987654321</SerialNo>', '<SerialNo>PSKC-RANDOM</SerialNo>').replace(/MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=\s*/, pskcSeed.toString('base64'));
  const imports = [
    await importTokens(plainRandom, 'application/xml'),
    await importTokens(figure3.replace('<SerialNo>987654321</SerialNo>', '<SerialNo>PSKC-PLAIN</SerialNo>'), 'application/xml'),
    await importTokens(fixture('rfc6030-figure6.pskcxml').replace('<SerialNo>987654321</SerialNo>', '<SerialNo>PSKC-AES</SerialNo>'), 'application/xml', { 'x-countersign-psk': FIGURE6_PSK }),
    await importTokens(fixture('rfc6030-figure7.pskcxml').replace('<pskc:SerialNo>987654321</pskc:SerialNo>', '<pskc:SerialNo>PSKC-PBKDF2</pskc:SerialNo>'), 'application/xml', {
      'x-countersign-pskc-password': FIGURE7_PASSWORD,
    }),
  ];
  expect(imports.map((r) => [r.status, r.body.imported.length, r.body.refused])).toEqual([
    [200, 1, []],
    [200, 1, []],
    [200, 1, []],
    [200, 1, []],
  ]);
  // The random-seed HOTP token is assigned, so it is exercised by verifications too.
  await createUser('hotp@contoso.com');
  expect((await t.admin('POST', '/v1/admin/tokens/PSKC-RANDOM/assign?tenant=default', { username: 'hotp@contoso.com' })).status).toBe(200);
  let next = 0;
  users['hotp'] = { username: 'hotp@contoso.com', userId: '', methodId: await methodIdOf('hotp@contoso.com'), seed: pskcSeed, code: () => hotpAt(base32(pskcSeed), next++, 8) };

  seeds.push(
    ...Object.entries(users).map(([name, u]) => ({ name: `${name}'s seed`, bytes: u.seed })),
    { name: 'the inventory token seed', bytes: csvSeeds[2] ?? Buffer.alloc(0) },
    { name: 'the RFC 4226 key (PSKC figures 3, 6, 7)', bytes: RFC4226_KEY },
  );

  // Use every assigned seed once, so rows are rewritten and older versions sit in the WAL.
  nextStep();
  for (const user of Object.values(users)) expect(await verify(user.username, user.code())).toEqual(APPROVED);
});

afterAll(async () => {
  await t.close();
});

/**
 * Every way a seed could be written as text or bytes: raw, hex (both cases), Base32 (both
 * cases) and Base64/Base64url. Base32 and Base64 depend on where the seed starts inside a longer
 * encoded value, so each is also searched at every alignment (the characters that encode only
 * seed bytes).
 */
function encodingsOf(seed: Buffer): { encoding: string; needle: Buffer }[] {
  const out: { encoding: string; needle: Buffer }[] = [
    { encoding: 'raw bytes', needle: seed },
    { encoding: 'hex', needle: Buffer.from(seed.toString('hex')) },
    { encoding: 'HEX', needle: Buffer.from(seed.toString('hex').toUpperCase()) },
  ];
  for (let k = 0; k < 5; k++) {
    const text = base32(Buffer.concat([Buffer.alloc(k), seed]));
    const core = text.slice(Math.ceil((8 * k) / 5), Math.floor((8 * (k + seed.length)) / 5));
    out.push({ encoding: `Base32 (offset ${k})`, needle: Buffer.from(core) }, { encoding: `base32 lower-case (offset ${k})`, needle: Buffer.from(core.toLowerCase()) });
  }
  for (let k = 0; k < 3; k++) {
    const bytes = Buffer.concat([Buffer.alloc(k), seed]);
    for (const [encoding, text] of [
      ['Base64', bytes.toString('base64')],
      ['Base64url', bytes.toString('base64url')],
    ] as const) {
      out.push({ encoding: `${encoding} (offset ${k})`, needle: Buffer.from(text.slice(Math.ceil((8 * k) / 6), Math.floor((8 * (k + seed.length)) / 6))) });
    }
  }
  return out;
}

/** The whole store as bytes: SQLite's files in the data dir, or every PostgreSQL table as text. */
async function dumpStore(): Promise<{ name: string; bytes: Buffer }[]> {
  if (DEFAULT_DIALECT === 'sqlite') {
    // Read by another process: opening and closing the database file in this one would drop this
    // process's POSIX locks on it (SQLite's "How To Corrupt", §2.2) while its connections are open.
    return readdirSync(t.location.dataDir)
      .filter((f) => f.startsWith('countersign.db'))
      .map((f) => ({ name: f, bytes: execFileSync('cat', [join(t.location.dataDir, f)], { maxBuffer: 1 << 30 }) }));
  }
  const tables = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by table_name`.execute(t.services.db);
  const dumps: { name: string; bytes: Buffer }[] = [];
  for (const { table_name } of tables.rows) {
    const rows = await sql<Record<string, unknown>>`select * from ${sql.table(table_name)}`.execute(t.services.db);
    dumps.push({ name: table_name, bytes: Buffer.from(rows.rows.map((r) => Object.values(r).map(String).join('\t')).join('\n')) });
  }
  return dumps;
}

function findIn(dumps: { name: string; bytes: Buffer }[], needles: { what: string; needle: Buffer }[]): string[] {
  const hits: string[] = [];
  for (const { what, needle } of needles) for (const dump of dumps) if (dump.bytes.includes(needle)) hits.push(`${what} in ${dump.name}`);
  return hits;
}

describe('OTP-10: seeds are envelope-encrypted at rest', () => {
  it('OTP-10: a dump of the store holds no seed in any encoding (raw, hex, Base32, Base64), nor the PSKC key or password', async () => {
    const dumps = await dumpStore();
    if (DEFAULT_DIALECT === 'sqlite') {
      // Both the database and its write-ahead log are searched, and the log is not empty.
      expect(dumps.map((d) => d.name).filter((n) => n === 'countersign.db' || n === 'countersign.db-wal')).toEqual(['countersign.db', 'countersign.db-wal']);
      expect(dumps.find((d) => d.name === 'countersign.db-wal')?.bytes.length).toBeGreaterThan(0);
    } else {
      expect(dumps.map((d) => d.name)).toEqual(expect.arrayContaining(['methods', 'data_keys', 'audit_events', 'users']));
    }
    // The search can find things: the store does hold the usernames, serials and sealed values.
    const methods = await t.services.db.selectFrom('methods').select(['secret', 'serial']).execute();
    expect(methods).toHaveLength(9);
    const controls = [
      { what: 'a username', needle: Buffer.from('alice@contoso.com') },
      { what: 'a serial', needle: Buffer.from('PSKC-PBKDF2') },
      ...methods.map((m) => ({ what: 'a sealed seed', needle: Buffer.from(m.secret) })),
    ];
    for (const control of controls) expect(findIn(dumps, [control]).length).toBeGreaterThanOrEqual(1);

    const needles = [
      ...seeds.flatMap((s) => encodingsOf(s.bytes).map((e) => ({ what: `${s.name} as ${e.encoding}`, needle: e.needle }))),
      { what: 'the PSKC pre-shared key (hex)', needle: Buffer.from(FIGURE6_PSK) },
      { what: 'the PSKC pre-shared key (bytes)', needle: Buffer.from(FIGURE6_PSK, 'hex') },
      { what: 'the PSKC password', needle: Buffer.from(FIGURE7_PASSWORD) },
    ];
    expect(needles).toHaveLength(seeds.length * 19 + 3);
    expect(findIn(dumps, needles)).toEqual([]);
  });

  it('OTP-10: each sealed seed names its data key, and no data key is stored unwrapped', async () => {
    const methods = await t.services.db.selectFrom('methods').select(['key_id', 'secret']).execute();
    const dataKeys = await t.services.db.selectFrom('data_keys').selectAll().execute();
    expect(dataKeys).toHaveLength(1);
    expect(new Set(methods.map((m) => m.key_id))).toEqual(new Set([dataKeys[0]?.id]));
    // AES-256-GCM: 12-byte IV ‖ ciphertext ‖ 16-byte tag; a 20-byte seed seals to 48 bytes.
    const sealedAlice = await t.services.db.selectFrom('methods').select('secret').where('id', '=', users['alice']?.methodId ?? '').executeTakeFirstOrThrow();
    expect(Buffer.from(sealedAlice.secret, 'base64')).toHaveLength(12 + 20 + 16);
    // The data key is wrapped the same way (32-byte key → 60 bytes) by the KEK in keys.json,
    // which is not in the store.
    expect(Buffer.from(dataKeys[0]?.wrapped_key ?? '', 'base64')).toHaveLength(12 + 32 + 16);
    const keyring = JSON.parse(readFileSync(join(t.location.dataDir, KEYRING_FILE), 'utf8')) as { keks: { id: string; key: string }[]; audit_key: string };
    expect(dataKeys[0]?.kek_id).toBe(keyring.keks[0]?.id);
    const dumps = await dumpStore();
    expect(findIn(dumps, [...keyring.keks.map((k) => ({ what: 'the KEK', needle: Buffer.from(k.key) })), { what: 'the audit key', needle: Buffer.from(keyring.audit_key) }])).toEqual([]);
  });

  it('OTP-10: the same store opened with a keyring whose keys.json holds another key refuses with KEY_UNAVAILABLE, never a wrong approval', async () => {
    nextStep();
    const path = join(t.location.dataDir, KEYRING_FILE);
    const original = readFileSync(path, 'utf8');
    const file = JSON.parse(original) as { keks: { id: string; key: string }[] };
    writeFileSync(path, JSON.stringify({ ...file, keks: file.keks.map((k) => ({ ...k, key: randomBytes(32).toString('base64') })) }), { mode: 0o600 });
    let other: TestContext | undefined;
    let otherApp: FastifyInstance | undefined;
    try {
      other = await createTestContext({ location: t.location, clock: t.clock });
      otherApp = await buildServer(other.services);
      const alice = users['alice'];
      expect(alice).toBeDefined();
      if (alice === undefined) return;
      expect(await verify(alice.username, alice.code(), otherApp)).toEqual(KEY_UNAVAILABLE);
      expect(await verify(alice.username, '000000', otherApp)).toEqual(KEY_UNAVAILABLE);
    } finally {
      await otherApp?.close();
      await other?.close();
      writeFileSync(path, original, { mode: 0o600 });
    }
    // The code was not consumed by the refused attempt: the right keyring approves it.
    expect(await verify(users['alice']?.username ?? '', users['alice']?.code() ?? '')).toEqual(APPROVED);
  });

  it('OTP-10: a key-encryption key from configuration with the right id but another value refuses with KEY_UNAVAILABLE', async () => {
    nextStep();
    const file = JSON.parse(readFileSync(join(t.location.dataDir, KEYRING_FILE), 'utf8')) as { keks: { id: string }[]; audit_key: string };
    // The store's own audit key (a foreign one is refused at start: keyring.security.test.ts),
    // with a KEK of the right id but the wrong value.
    const other = await createTestContext({
      location: t.location,
      clock: t.clock,
      config: { keys: `${file.keks[0]?.id ?? ''}:${randomBytes(32).toString('base64')}`, auditKey: file.audit_key },
    });
    const otherApp = await buildServer(other.services);
    try {
      expect(await verify('bob@contoso.com', users['bob']?.code() ?? '', otherApp)).toEqual(KEY_UNAVAILABLE);
    } finally {
      await otherApp.close();
      await other.close();
    }
    expect(await verify('bob@contoso.com', users['bob']?.code() ?? '')).toEqual(APPROVED);
  });

  it('OTP-10: a flipped bit anywhere in methods.secret (IV, ciphertext, GCM tag) fails verification and never approves', async () => {
    const alice = users['alice'];
    if (alice === undefined) throw new Error('alice was not enrolled');
    const row = await t.services.db.selectFrom('methods').select('secret').where('id', '=', alice.methodId).executeTakeFirstOrThrow();
    const sealed = Buffer.from(row.secret, 'base64');
    const results: Reply[] = [];
    for (const [byte, bit] of [
      [0, 0],
      [11, 7],
      [12, 0],
      [20, 3],
      [sealed.length - 16, 0],
      [sealed.length - 1, 7],
    ] as const) {
      const altered = Buffer.from(sealed);
      altered[byte] = (altered[byte] ?? 0) ^ (1 << bit);
      await t.services.db.updateTable('methods').set({ secret: altered.toString('base64') }).where('id', '=', alice.methodId).execute();
      nextStep();
      results.push(await verify(alice.username, alice.code()));
    }
    expect(results).toEqual(Array.from({ length: 6 }, () => KEY_UNAVAILABLE));
    await t.services.db.updateTable('methods').set({ secret: row.secret }).where('id', '=', alice.methodId).execute();
    expect(await verify(alice.username, alice.code())).toEqual(APPROVED);
  });

  it('OTP-10: a sealed seed copied onto another method row does not open there (bound to its row by the AAD)', async () => {
    const [alice, dave] = [users['alice'], users['dave']];
    if (alice === undefined || dave === undefined) throw new Error('users missing');
    const source = await t.services.db.selectFrom('methods').select(['secret', 'key_id']).where('id', '=', alice.methodId).executeTakeFirstOrThrow();
    const target = await t.services.db.selectFrom('methods').select(['secret', 'key_id']).where('id', '=', dave.methodId).executeTakeFirstOrThrow();
    expect(target.key_id).toBe(source.key_id);
    await t.services.db.updateTable('methods').set({ secret: source.secret }).where('id', '=', dave.methodId).execute();
    nextStep();
    // Neither alice's code nor dave's opens dave's row now.
    expect(await verify(dave.username, alice.code())).toEqual(KEY_UNAVAILABLE);
    expect(await verify(dave.username, dave.code())).toEqual(KEY_UNAVAILABLE);
    await t.services.db.updateTable('methods').set({ secret: target.secret }).where('id', '=', dave.methodId).execute();
    expect(await verify(dave.username, dave.code())).toEqual(APPROVED);
  });

  it('OTP-10: keys.json is created with mode 0600 in a data dir of mode 0700', async () => {
    expect(statSync(join(t.location.dataDir, KEYRING_FILE)).mode & 0o777).toBe(0o600);
    const parent = mkdtempSync(join(tmpdir(), 'countersign-keys-'));
    try {
      const dataDir = join(parent, 'fresh', 'data');
      const keyring = loadKeyring({ dataDir, keys: undefined, auditKey: undefined, now: t.clock() });
      expect(keyring.source).toBe('file');
      expect(statSync(join(dataDir, KEYRING_FILE)).mode & 0o777).toBe(0o600);
      expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

/** Runs the real CLI on a test store (SQLite data dir, or PostgreSQL with the same keys.json), as a separate process. */
async function runCli(app: TestApp, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined && !name.startsWith('COUNTERSIGN_')) env[name] = value;
  const store = ['--data-dir', app.location.dataDir, ...(app.location.databaseUrl === undefined ? [] : ['--database-url', app.location.databaseUrl])];
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args, ...store], { cwd: app.location.dataDir, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

describe('KEY-01: rotating the key-encryption key', () => {
  const countersign = (args: string[]) => runCli(t, args);

  const keyringIds = (): string[] => (JSON.parse(readFileSync(join(t.location.dataDir, KEYRING_FILE), 'utf8')) as { keks: { id: string }[] }).keks.map((k) => k.id);

  /** A node started on the store now (reads keys.json again), as after a restart. */
  async function restart(): Promise<{ context: TestContext; app: FastifyInstance; close(): Promise<void> }> {
    const context = await createTestContext({ location: t.location, clock: t.clock });
    const app = await buildServer(context.services);
    return { context, app, close: async () => (await app.close(), await context.close()) };
  }

  it('KEY-01: `keys rotate` re-wraps the data keys; old seeds still verify; new enrollments use the new data key; after `keys retire` of the old KEK no row is broken', async () => {
    const [oldKek] = keyringIds();
    const dataKeysBefore = await t.services.db.selectFrom('data_keys').select(['id', 'kek_id']).execute();
    expect(dataKeysBefore).toEqual([{ id: expect.stringMatching(/^dek-/), kek_id: oldKek }]);
    const oldDataKey = dataKeysBefore[0]?.id;

    const rotated = await countersign(['keys', 'rotate', '--json']);
    expect(rotated.code).toBe(0);
    const rotation = JSON.parse(rotated.stdout) as { key_encryption_key: string; data_key: string; rewrapped: number };
    expect(rotation.rewrapped).toBe(1);
    expect(rotation.data_key).not.toBe(oldDataKey);
    expect(keyringIds()).toEqual([oldKek, rotation.key_encryption_key]);
    expect(statSync(join(t.location.dataDir, KEYRING_FILE)).mode & 0o777).toBe(0o600);
    const dataKeysAfter = await t.services.db.selectFrom('data_keys').select(['id', 'kek_id', 'active']).orderBy('active').execute();
    expect(dataKeysAfter.map((d) => ({ ...d, active: Number(d.active) }))).toEqual([
      { id: oldDataKey, kek_id: rotation.key_encryption_key, active: 0 },
      { id: rotation.data_key, kek_id: rotation.key_encryption_key, active: 1 },
    ]);

    // The running node still verifies the old seeds.
    nextStep();
    expect(await verify('bob@contoso.com', users['bob']?.code() ?? '')).toEqual(APPROVED);

    // A node started after the rotation: old seeds verify, a new enrollment seals under the new data key.
    let node = await restart();
    try {
      nextStep();
      for (const name of ['alice', 'bob', 'carol', 'dave', 'hotp']) expect(await verify(users[name]?.username ?? '', users[name]?.code() ?? '', node.app)).toEqual(APPROVED);
      const created = await node.app.inject({
        method: 'POST',
        url: '/v1/admin/users?tenant=default',
        headers: { authorization: `Bearer ${t.adminKey}` },
        payload: { username: 'erin@contoso.com', mfa_state: 'enforced' },
      });
      expect(created.statusCode).toBe(201);
      const enrolled = await node.app.inject({ method: 'POST', url: '/v1/admin/users/erin@contoso.com/methods/totp?tenant=default', headers: { authorization: `Bearer ${t.adminKey}` }, payload: {} });
      expect(enrolled.statusCode).toBe(201);
      const erinMethod: string = enrolled.json().method.id;
      expect((await t.services.db.selectFrom('methods').select('key_id').where('id', '=', erinMethod).executeTakeFirstOrThrow()).key_id).toBe(rotation.data_key);
      const erinSecret: string = enrolled.json().secret;
      const activated = await node.app.inject({
        method: 'POST',
        url: `/v1/admin/users/erin@contoso.com/methods/${erinMethod}/activate?tenant=default`,
        headers: { authorization: `Bearer ${t.adminKey}` },
        payload: { code: totpAt(erinSecret, t.clock.ms()) },
      });
      expect(activated.json().status).toBe('active');
      users['erin'] = { username: 'erin@contoso.com', userId: '', methodId: erinMethod, seed: Buffer.from(Secret.fromBase32(erinSecret).bytes), code: () => totpAt(erinSecret, t.clock.ms()) };
    } finally {
      await node.close();
    }

    // The active key cannot be retired; the old one can, once nothing uses it.
    const refused = await countersign(['keys', 'retire', rotation.key_encryption_key]);
    expect(refused.code).toBe(1);
    expect([oldDataKey, rotation.data_key].map((d) => `countersign: key ${rotation.key_encryption_key} still wraps data key ${d ?? ''}: run \`countersign keys rewrap\` first`)).toContain(refused.stderr.trim());
    const retired = await countersign(['keys', 'retire', oldKek ?? '']);
    expect({ code: retired.code, stdout: retired.stdout.trim() }).toEqual({ code: 0, stdout: `retired key-encryption key ${oldKek ?? ''}` });
    expect(keyringIds()).toEqual([rotation.key_encryption_key]);
    expect(statSync(join(t.location.dataDir, KEYRING_FILE)).mode & 0o777).toBe(0o600);

    // With only the new KEK: every row opens, and every user verifies.
    node = await restart();
    try {
      const box = createSecretBox(node.context.services.db, node.context.services.keyring, t.clock);
      const rows = await node.context.services.db.selectFrom('methods').select(['id', 'secret', 'key_id']).execute();
      expect(rows).toHaveLength(10);
      const opened = await Promise.all(rows.map(async (r) => (await box.open(r.secret, r.key_id, r.id)).length));
      // Nine 160-bit seeds and the 256-bit inventory token: every one opens to its full length.
      expect(opened.sort((a, b) => a - b)).toEqual([20, 20, 20, 20, 20, 20, 20, 20, 20, 32]);
      nextStep();
      for (const name of ['alice', 'bob', 'carol', 'dave', 'hotp', 'erin']) expect(await verify(users[name]?.username ?? '', users[name]?.code() ?? '', node.app)).toEqual(APPROVED);
    } finally {
      await node.close();
    }
    // The rotation is in the audit log, and the store still holds no seed.
    const actions = (await t.services.db.selectFrom('audit_events').select('action').where('actor', '=', 'cli').orderBy('seq').execute()).map((r) => r.action);
    expect(actions).toEqual(['keys.rotated', 'keys.retired']);
    expect(existsSync(join(t.location.dataDir, KEYRING_FILE))).toBe(true);
  });
});

describe('KEY-01: rotation is online', () => {
  // Its own store, on a clock that starts at real time: the CLI runs on the real clock.
  let u: TestApp;
  beforeAll(async () => {
    u = await createTestApp({ clock: fakeClock(Date.now()) });
  });
  afterAll(async () => {
    await u.close();
  });

  const verifyOn = (username: string, code: string): Promise<Reply> =>
    u.app.inject({ method: 'POST', url: '/v1/verify', headers: { authorization: `Bearer ${u.appKey}` }, payload: { username, code } }).then((r) => ({ status: r.statusCode, body: r.json() }));

  it('KEY-01: after `keys rotate` by the CLI, a running server verifies seeds sealed under the new key and seals new seeds under it, without a restart', async () => {
    expect((await u.admin('POST', '/v1/admin/users?tenant=default', { username: 'before@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    const before = await u.admin('POST', '/v1/admin/users/before@contoso.com/methods/totp?tenant=default', {});
    expect((await u.admin('POST', `/v1/admin/users/before@contoso.com/methods/${before.body.method.id}/activate?tenant=default`, { code: totpAt(before.body.secret, u.clock.ms()) })).body.status).toBe('active');

    const rotated = await runCli(u, ['keys', 'rotate', '--json']);
    expect(rotated.code).toBe(0);
    const rotation = JSON.parse(rotated.stdout) as { key_encryption_key: string; data_key: string };

    // A seed sealed by the CLI after the rotation (new data key, new KEK)…
    expect((await u.admin('POST', '/v1/admin/users?tenant=default', { username: 'cli@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    const enrolled = await runCli(u, ['totp', 'enroll', '--tenant', 'default', 'cli@contoso.com', '--json']);
    expect(enrolled.code).toBe(0);
    const enrollment = JSON.parse(enrolled.stdout) as { secret: string; method: { id: string } };
    const activated = await runCli(u, ['totp', 'activate', '--tenant', 'default', 'cli@contoso.com', enrollment.method.id, totpAt(enrollment.secret, Date.now())]);
    expect(activated.code).toBe(0);
    expect((await u.services.db.selectFrom('methods').select('key_id').where('id', '=', enrollment.method.id).executeTakeFirstOrThrow()).key_id).toBe(rotation.data_key);

    // …verifies on the server that was running all along, as do the seeds from before.
    u.clock.set(Date.now() + 3 * STEP);
    expect(await verifyOn('cli@contoso.com', totpAt(enrollment.secret, u.clock.ms()))).toEqual(APPROVED);
    expect(await verifyOn('before@contoso.com', totpAt(before.body.secret, u.clock.ms()))).toEqual(APPROVED);

    // New seals on the running server use the new data key (it re-checks within 10 s).
    u.clock.advance(10_000);
    expect((await u.admin('POST', '/v1/admin/users?tenant=default', { username: 'after@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    const after = await u.admin('POST', '/v1/admin/users/after@contoso.com/methods/totp?tenant=default', {});
    expect((await u.services.db.selectFrom('methods').select('key_id').where('id', '=', after.body.method.id).executeTakeFirstOrThrow()).key_id).toBe(rotation.data_key);
  });
});

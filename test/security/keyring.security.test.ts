import { execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { createServices } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { CountersignError } from '../../src/core/errors.js';
import type { Services } from '../../src/services.js';
import { verifyAuditChain } from '../../src/store/audit-log.js';
import { addKek, KEYRING_FILE, KEYRING_LOCK_SUFFIX, loadKeyring } from '../../src/store/keyring.js';
import { createTestContext, fakeClock, makeStoreLocation, type TestContext, type TestStoreLocation } from '../support/harness.js';

/**
 * The keyring belongs to its store (SECURITY.md KEY-01, OTP-10): a missing keys.json is never
 * silently replaced on a store that is in use, a keyring with another audit key is refused at
 * start, and `keys rotate` run twice at once loses no key-encryption key.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'bin/countersign.js');

interface KeyringJson {
  version: 1;
  keks: { id: string; key: string; created_at: string }[];
  audit_key: string;
}

interface SealedSeed {
  aad: string;
  seed: Buffer;
  sealed: string;
  keyId: string;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function location(dialect?: 'sqlite' | 'postgres'): Promise<TestStoreLocation> {
  const made = await makeStoreLocation(dialect);
  cleanups.push(() => made.drop());
  return made;
}

async function open(where: TestStoreLocation, config: Partial<Record<keyof Config, unknown>> = {}): Promise<TestContext> {
  const context = await createTestContext({ location: where, clock: fakeClock(Date.now()), config });
  cleanups.push(() => context.close());
  return context;
}

const readKeyring = (dataDir: string): KeyringJson => JSON.parse(readFileSync(join(dataDir, KEYRING_FILE), 'utf8')) as KeyringJson;

/** Uses a store: seals seeds (making a data key) and appends audit records. */
async function use(services: Services, count = 3): Promise<SealedSeed[]> {
  const seeds: SealedSeed[] = [];
  for (let i = 0; i < count; i++) {
    const seed = randomBytes(20);
    const aad = `method-${i}-${randomBytes(4).toString('hex')}`;
    seeds.push({ aad, seed, ...(await services.secrets.seal(seed, aad)) });
    await services.audit({ tenantId: null, actor: 'system', action: 'test.used', target: aad });
  }
  return seeds;
}

/** What a refused start must leave unchanged. */
async function snapshot(services: Services): Promise<unknown> {
  const [head, events, dataKeys, meta] = await Promise.all([
    services.db.selectFrom('audit_head').selectAll().execute(),
    services.db.selectFrom('audit_events').select(['seq', 'hash']).orderBy('seq').execute(),
    services.db.selectFrom('data_keys').selectAll().orderBy('id').execute(),
    services.db.selectFrom('store_meta').selectAll().orderBy('name').execute(),
  ]);
  return { head, events, dataKeys, meta };
}

/** createServices on the location with `config`, expecting KEY_UNAVAILABLE; returns the message. */
async function refusedStart(where: TestStoreLocation, config: Partial<Record<keyof Config, unknown>> = {}): Promise<string> {
  const settings = loadConfig({ env: {}, overrides: { dataDir: where.dataDir, databaseUrl: where.databaseUrl, logLevel: 'silent', ...config } });
  const error: unknown = await createServices(settings).then(
    async (services) => {
      await services.store.close();
      return undefined;
    },
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(CountersignError);
  expect((error as CountersignError).code).toBe('KEY_UNAVAILABLE');
  return (error as CountersignError).message;
}

/** No key of the keyring, in any encoding we write, appears in `text`. */
function expectNoKeyIn(text: string, keyring: KeyringJson): void {
  for (const encoded of [keyring.audit_key, ...keyring.keks.map((k) => k.key)]) {
    expect(text).not.toContain(encoded);
    expect(text).not.toContain(Buffer.from(encoded, 'base64').toString('hex'));
  }
}

async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (value !== undefined && !name.startsWith('COUNTERSIGN_')) env[name] = value;
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { cwd: tmpdir(), env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

const storeArgs = (where: TestStoreLocation, dataDir = where.dataDir): string[] => ['--data-dir', dataDir, ...(where.databaseUrl === undefined ? [] : ['--database-url', where.databaseUrl])];

describe('KEY-01: a missing keys.json is never replaced on a store in use', () => {
  it('KEY-01: keys.json missing on a used store → start refused with KEY_UNAVAILABLE, nothing written, the chain still verifies with the original keyring', async () => {
    const where = await location();
    const first = await open(where);
    const seeds = await use(first.services);
    const original = readKeyring(where.dataDir);
    const before = await snapshot(first.services);
    await first.close();
    cleanups.pop();

    const path = join(where.dataDir, KEYRING_FILE);
    renameSync(path, `${path}.bak`);
    const message = await refusedStart(where);
    expect(message).toContain(path);
    expect(message).toContain('Restore DATA_DIR/keys.json from backup');
    expect(message).toContain('COUNTERSIGN_KEYS');
    expect(message).toContain('COUNTERSIGN_AUDIT_KEY');
    expectNoKeyIn(message, original);
    expect(existsSync(path)).toBe(false);

    renameSync(`${path}.bak`, path);
    const again = await open(where);
    expect(await snapshot(again.services)).toEqual(before);
    expect(await verifyAuditChain(again.services.db, again.services.keyring.auditKey)).toEqual({ ok: true, records: seeds.length });
    for (const s of seeds) expect(await again.services.secrets.open(s.sealed, s.keyId, s.aad)).toEqual(s.seed);
  });

  it('KEY-01: a store holding only audit records, or only a data key, also counts as in use', async () => {
    for (const kind of ['audit', 'data key'] as const) {
      const where = await location();
      const first = await open(where);
      if (kind === 'audit') await first.services.audit({ tenantId: null, actor: 'system', action: 'test.used', target: null });
      else await first.services.secrets.seal(randomBytes(20), 'aad');
      // An older store, from before the audit key check: no store_meta row either.
      await first.services.db.deleteFrom('store_meta').execute();
      await first.close();
      cleanups.pop();
      rmSync(join(where.dataDir, KEYRING_FILE));
      expect(await refusedStart(where)).toContain('is missing');
      expect(existsSync(join(where.dataDir, KEYRING_FILE))).toBe(false);
    }
  });

  it('KEY-01: the CLI on a used store with another data dir (no keys.json there) fails and writes nothing; `audit verify` still reports OK', async () => {
    const where = await location();
    const first = await open(where);
    await use(first.services, 2);
    const before = await snapshot(first.services);
    // SQLite: the data dir is the store, so keys.json is moved away; PostgreSQL: a CLI given
    // --database-url and a data dir of its own, as in the report.
    let dataDir = where.dataDir;
    if (where.databaseUrl === undefined) renameSync(join(dataDir, KEYRING_FILE), join(dataDir, 'keys.bak'));
    else {
      dataDir = mkdtempSync(join(tmpdir(), 'countersign-other-'));
      cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    }
    const added = await runCli(['tenant', 'create', 'second', ...storeArgs(where, dataDir)]);
    expect(added.code).toBe(1);
    expect(added.stderr).toContain('is missing');
    expect(added.stderr).toContain('COUNTERSIGN_AUDIT_KEY');
    expect(existsSync(join(dataDir, KEYRING_FILE))).toBe(false);
    expect(await snapshot(first.services)).toEqual(before);
    if (where.databaseUrl === undefined) renameSync(join(dataDir, 'keys.bak'), join(dataDir, KEYRING_FILE));
    const verified = await runCli(['audit', 'verify', ...storeArgs(where)]);
    expect({ code: verified.code, stdout: verified.stdout.trim() }).toEqual({ code: 0, stdout: 'audit log intact: 2 records' });
  });

  it('OTP-10: a fresh store generates keys.json (mode 0600) and records the audit key check, which is no key', async () => {
    const where = await location();
    expect(existsSync(join(where.dataDir, KEYRING_FILE))).toBe(false);
    const context = await open(where);
    const path = join(where.dataDir, KEYRING_FILE);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const keyring = readKeyring(where.dataDir);
    expect(keyring.keks.map((k) => k.id)).toEqual([expect.stringMatching(/^kek-\d{8}-[0-9a-f]{8}$/)]);
    expect(context.services.keyring.auditKey).toEqual(Buffer.from(keyring.audit_key, 'base64'));
    const meta = await context.services.db.selectFrom('store_meta').selectAll().execute();
    expect(meta).toEqual([{ name: 'audit_key_check', value: createHmac('sha256', context.services.keyring.auditKey).update('countersign audit key check').digest('hex') }]);
    expectNoKeyIn(JSON.stringify(meta), keyring);
    // A second start with the same keyring is accepted and changes nothing.
    const second = await open(where);
    expect(await second.services.db.selectFrom('store_meta').selectAll().execute()).toEqual(meta);
  });
});

describe('KEY-01: a keyring that is not the store\'s is refused at start', () => {
  it('KEY-01: keys.json with the same KEKs but another audit key → KEY_UNAVAILABLE, the store unchanged', async () => {
    const where = await location();
    const first = await open(where);
    const seeds = await use(first.services);
    const before = await snapshot(first.services);
    const path = join(where.dataDir, KEYRING_FILE);
    const original = readFileSync(path, 'utf8');
    const keyring = JSON.parse(original) as KeyringJson;
    const forged = { ...keyring, audit_key: randomBytes(32).toString('base64') };
    writeFileSync(path, JSON.stringify(forged), { mode: 0o600 });
    const message = await refusedStart(where);
    expect(message).toMatch(/^the audit key does not belong to this store/);
    expect(message).toContain('COUNTERSIGN_KEYS');
    expectNoKeyIn(message, keyring);
    expectNoKeyIn(message, forged);
    expect(await snapshot(first.services)).toEqual(before);
    writeFileSync(path, original, { mode: 0o600 });
    expect(await verifyAuditChain(first.services.db, first.services.keyring.auditKey)).toEqual({ ok: true, records: seeds.length });
  });

  it('KEY-01: keys from configuration on a store first started with keys.json → refused unless the audit key matches', async () => {
    const where = await location();
    const first = await open(where);
    const seeds = await use(first.services);
    const keyring = readKeyring(where.dataDir);
    const keys = keyring.keks.map((k) => `${k.id}:${k.key}`).join(',');
    const before = await snapshot(first.services);

    const message = await refusedStart(where, { keys, auditKey: randomBytes(32).toString('base64') });
    expect(message).toMatch(/^the audit key does not belong to this store/);
    expect(message).toContain('COUNTERSIGN_AUDIT_KEY');
    expect(await snapshot(first.services)).toEqual(before);

    const configured = await open(where, { keys, auditKey: keyring.audit_key });
    expect(configured.services.keyring.source).toBe('config');
    for (const s of seeds) expect(await configured.services.secrets.open(s.sealed, s.keyId, s.aad)).toEqual(s.seed);
    await configured.services.audit({ tenantId: null, actor: 'system', action: 'test.configured', target: null });
    expect(await verifyAuditChain(first.services.db, first.services.keyring.auditKey)).toEqual({ ok: true, records: seeds.length + 1 });
  });

  it('KEY-01: COUNTERSIGN_AUDIT_KEY without COUNTERSIGN_KEYS (or the reverse) → KEY_UNAVAILABLE naming both', async () => {
    const where = await location();
    const message = await refusedStart(where, { auditKey: randomBytes(32).toString('base64') });
    expect(message).toContain('COUNTERSIGN_KEYS');
    expect(message).toContain('COUNTERSIGN_AUDIT_KEY');
    expect(existsSync(join(where.dataDir, KEYRING_FILE))).toBe(false);
    const keysOnly = (): unknown => loadKeyring({ dataDir: where.dataDir, keys: [{ id: 'k1', key: randomBytes(32) }], auditKey: undefined, now: new Date() });
    expect(keysOnly).toThrow(/COUNTERSIGN_KEYS.*COUNTERSIGN_AUDIT_KEY|COUNTERSIGN_AUDIT_KEY.*COUNTERSIGN_KEYS/);
    // Nothing was bound to the store: a correct start afterwards is accepted.
    const context = await open(where);
    expect(context.services.keyring.source).toBe('file');
  });
});

describe('KEY-01: `keys rotate` twice at once', () => {
  it('KEY-01: two concurrent `keys rotate` on one SQLite data dir → both KEKs in keys.json, no lock left, every seed still opens, the chain verifies', async () => {
    const where = await location('sqlite');
    const first = await open(where);
    const seeds = await use(first.services, 4);
    const [original] = readKeyring(where.dataDir).keks.map((k) => k.id);
    await first.close();
    cleanups.pop();

    const results = await Promise.all([0, 1].map(() => runCli(['keys', 'rotate', '--json', '--data-dir', where.dataDir])));
    expect(results.map((r) => ({ code: r.code, stderr: r.stderr }))).toEqual([
      { code: 0, stderr: '' },
      { code: 0, stderr: '' },
    ]);
    const added = results.map((r) => (JSON.parse(r.stdout) as { key_encryption_key: string }).key_encryption_key);
    expect(new Set(added).size).toBe(2);
    for (const id of added) expect(id).toMatch(/^kek-\d{8}-[0-9a-f]{8}$/);
    const ids = readKeyring(where.dataDir).keks.map((k) => k.id);
    expect(ids).toHaveLength(3);
    expect(new Set(ids)).toEqual(new Set([original, ...added]));
    expect(existsSync(join(where.dataDir, `${KEYRING_FILE}${KEYRING_LOCK_SUFFIX}`))).toBe(false);
    expect(statSync(join(where.dataDir, KEYRING_FILE)).mode & 0o777).toBe(0o600);

    const after = await open(where);
    for (const s of seeds) expect(await after.services.secrets.open(s.sealed, s.keyId, s.aad)).toEqual(s.seed);
    const dataKeys = await after.services.db.selectFrom('data_keys').select(['kek_id', 'active']).execute();
    expect(dataKeys).toHaveLength(3);
    expect(dataKeys.filter((d) => Number(d.active) === 1)).toHaveLength(1);
    for (const d of dataKeys) expect(added).toContain(d.kek_id);
    // A seed sealed now opens too, and the audit log holds both rotations in one unbroken chain.
    const [fresh] = await use(after.services, 1);
    if (fresh === undefined) throw new Error('nothing sealed');
    expect(await after.services.secrets.open(fresh.sealed, fresh.keyId, fresh.aad)).toEqual(fresh.seed);
    expect(await verifyAuditChain(after.services.db, after.services.keyring.auditKey)).toEqual({ ok: true, records: seeds.length + 3 });
    const actions = await after.services.db.selectFrom('audit_events').select('action').where('action', '=', 'keys.rotated').execute();
    expect(actions).toHaveLength(2);
  });

  it('KEY-01: addKek waits for the keyring lock held by another process and proceeds once it is released', async () => {
    const where = await location('sqlite');
    const keyring = loadKeyring({ dataDir: where.dataDir, keys: undefined, auditKey: undefined, now: new Date() });
    const lock = `${keyring.path ?? ''}${KEYRING_LOCK_SUFFIX}`;
    writeFileSync(lock, '99999\n', { flag: 'wx' });
    const released = new Promise<void>((done) => setTimeout(() => (rmSync(lock), done()), 300));
    const started = Date.now();
    const rotated = await addKek(keyring, new Date());
    await released;
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(rotated.keks.map((k) => k.id)).toEqual([...keyring.keks.map((k) => k.id), expect.stringMatching(/^kek-\d{8}-[0-9a-f]{8}$/)]);
    expect(existsSync(lock)).toBe(false);
  });

  it('KEY-01: a keyring lock that is never released → addKek fails after ~10 s naming the lock file, keys.json untouched', async () => {
    const where = await location('sqlite');
    const keyring = loadKeyring({ dataDir: where.dataDir, keys: undefined, auditKey: undefined, now: new Date() });
    const path = keyring.path ?? '';
    const before = readFileSync(path, 'utf8');
    const lock = `${path}${KEYRING_LOCK_SUFFIX}`;
    writeFileSync(lock, '99999\n', { flag: 'wx' });
    const error: unknown = await addKek(keyring, new Date()).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(CountersignError);
    expect((error as CountersignError).message).toContain(lock);
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(existsSync(lock)).toBe(true);
  }, 20_000);
});

import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import { CountersignError } from '../core/errors.js';
import type { Database } from './schema.js';

/**
 * Key-encryption keys (KEKs) and the audit HMAC key. They come from configuration
 * (`COUNTERSIGN_KEYS`, `COUNTERSIGN_AUDIT_KEY`) or, by default, from `keys.json` in the data
 * directory, generated on first start with mode 0600. KEKs never touch the database: they wrap
 * the data keys that are stored there (secret-box.ts), so a database dump alone opens nothing.
 *
 * A keyring belongs to one store. `openKeyring` generates keys.json only for a store nobody has
 * used yet (a new keyring on a used store would fork the audit chain and strand every sealed
 * seed), and checks the audit key against `store_meta.audit_key_check` on every start.
 */
export interface Kek {
  readonly id: string;
  readonly key: Buffer;
}

export interface Keyring {
  /** All KEKs, oldest first; the last one wraps new data keys. */
  readonly keks: readonly Kek[];
  readonly auditKey: Buffer;
  /** 'file' keyrings can be rotated by the CLI; 'config' ones are changed in configuration. */
  readonly source: 'file' | 'config';
  readonly path: string | undefined;
}

interface KeyringFile {
  version: 1;
  keks: { id: string; key: string; created_at: string }[];
  audit_key: string;
}

export const KEYRING_FILE = 'keys.json';

/** The lock file that serialises read-modify-write of keys.json across processes (`keys rotate`, `keys retire`). */
export const KEYRING_LOCK_SUFFIX = '.lock';
/** How long `keys rotate`/`keys retire` wait for another one holding the keyring lock. */
export const KEYRING_LOCK_WAIT_MS = 10_000;

const AUDIT_KEY_CHECK = 'audit_key_check';
const AUDIT_KEY_CHECK_TEXT = 'countersign audit key check';
const SHARED_KEYS_ADVICE = 'set COUNTERSIGN_KEYS and COUNTERSIGN_AUDIT_KEY to the keys every node and CLI of this store must share';

export function activeKek(keyring: Keyring): Kek {
  const kek = keyring.keks.at(-1);
  if (kek === undefined) throw new CountersignError('KEY_UNAVAILABLE', 'the keyring holds no key-encryption key');
  return kek;
}

export function keyringPath(dataDir: string): string {
  return join(dataDir, KEYRING_FILE);
}

/**
 * The keyring from configuration, or from keys.json in the data directory. A missing keys.json
 * is generated only when `allowCreate` is true (the default, for a data dir on its own); the
 * composition root passes false unless the store has never been used (see openKeyring).
 */
export function loadKeyring(options: {
  dataDir: string;
  keys: readonly Kek[] | undefined;
  auditKey: Buffer | undefined;
  now: Date;
  allowCreate?: boolean;
  /** Where the store is, for the message when keys.json is missing and may not be created. */
  storeLocation?: string;
}): Keyring {
  if (options.keys !== undefined && options.auditKey !== undefined) {
    return { keks: options.keys, auditKey: options.auditKey, source: 'config', path: undefined };
  }
  if (options.keys !== undefined || options.auditKey !== undefined) {
    const given = options.keys !== undefined ? 'COUNTERSIGN_KEYS' : 'COUNTERSIGN_AUDIT_KEY';
    const missing = options.keys !== undefined ? 'COUNTERSIGN_AUDIT_KEY' : 'COUNTERSIGN_KEYS';
    throw new CountersignError(
      'KEY_UNAVAILABLE',
      `${given} is set but ${missing} is not: keys from configuration need both COUNTERSIGN_KEYS and COUNTERSIGN_AUDIT_KEY (or neither, to use ${KEYRING_FILE} in the data directory)`,
    );
  }
  const path = keyringPath(options.dataDir);
  if (!existsSync(path)) {
    if (options.allowCreate === false) throw missingKeyring(path, options.storeLocation);
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    const file: KeyringFile = {
      version: 1,
      keks: [{ id: newKekId(options.now, []), key: randomBytes(32).toString('base64'), created_at: options.now.toISOString() }],
      audit_key: randomBytes(32).toString('base64'),
    };
    writeKeyringFile(path, file, true);
  }
  return parseKeyringFile(path);
}

/**
 * The keyring for a store that is open (the composition root calls this right after openStore):
 * loads it, generating keys.json only if the store has never been used, then binds it to the
 * store (bindKeyringToStore). Throws KEY_UNAVAILABLE, naming what the operator must do, when
 * the keyring is missing or is not this store's. Never prints a key.
 */
export async function openKeyring(
  db: Kysely<Database>,
  options: { dataDir: string; keys: readonly Kek[] | undefined; auditKey: Buffer | undefined; now: Date; storeLocation: string },
): Promise<Keyring> {
  const fromFile = options.keys === undefined && options.auditKey === undefined;
  const allowCreate = fromFile && !existsSync(keyringPath(options.dataDir)) ? await storeIsUnused(db) : false;
  const keyring = loadKeyring({ ...options, allowCreate });
  await bindKeyringToStore(db, keyring, options.storeLocation);
  return keyring;
}

/** True when the store holds no audit record, no data key and no audit key check: nobody has used it. */
export async function storeIsUnused(db: Kysely<Database>): Promise<boolean> {
  const head = await db.selectFrom('audit_head').select('seq').where('id', '=', 1).executeTakeFirst();
  if (Number(head?.seq ?? 0) !== 0) return false;
  if ((await db.selectFrom('data_keys').select('id').limit(1).executeTakeFirst()) !== undefined) return false;
  return (await db.selectFrom('store_meta').select('name').where('name', '=', AUDIT_KEY_CHECK).executeTakeFirst()) === undefined;
}

/** HMAC-SHA256(audit key, a fixed text), hex: names the audit key without revealing it. */
export function auditKeyCheck(auditKey: Buffer): string {
  return createHmac('sha256', auditKey).update(AUDIT_KEY_CHECK_TEXT).digest('hex');
}

/**
 * Refuses a keyring whose audit key is not the one this store was first started with; on the
 * first start (or the first after an upgrade) records it. Two processes starting at once insert
 * the same row or race with different ones: the insert tolerates the other's, and the value is
 * read back and compared, so exactly one audit key ever belongs to a store.
 */
export async function bindKeyringToStore(db: Kysely<Database>, keyring: Keyring, storeLocation: string): Promise<void> {
  const check = auditKeyCheck(keyring.auditKey);
  let stored = await readAuditKeyCheck(db);
  if (stored === undefined) {
    await db
      .insertInto('store_meta')
      .values({ name: AUDIT_KEY_CHECK, value: check })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    stored = await readAuditKeyCheck(db);
  }
  if (stored !== check) {
    const where = keyring.source === 'file' ? `the keyring ${keyring.path ?? KEYRING_FILE}` : 'COUNTERSIGN_AUDIT_KEY';
    throw new CountersignError(
      'KEY_UNAVAILABLE',
      `the audit key does not belong to this store (${storeLocation}): ${where} is not the keyring the store was first started with. ` +
        `Use that keyring: restore DATA_DIR/${KEYRING_FILE} from a backup of this store's data directory, or ${SHARED_KEYS_ADVICE}.`,
    );
  }
}

async function readAuditKeyCheck(db: Kysely<Database>): Promise<string | undefined> {
  const row = await db.selectFrom('store_meta').select('value').where('name', '=', AUDIT_KEY_CHECK).executeTakeFirst();
  return row?.value;
}

function missingKeyring(path: string, storeLocation: string | undefined): CountersignError {
  const store = storeLocation === undefined ? 'the store' : `the store (${storeLocation})`;
  return new CountersignError(
    'KEY_UNAVAILABLE',
    `the keyring ${path} is missing, but ${store} is already in use (it holds data keys or audit records, sealed and signed with keys from another keyring); ` +
      `a new keyring would break the audit chain and make every seed unreadable, so none is generated. ` +
      `Restore DATA_DIR/${KEYRING_FILE} from backup, or ${SHARED_KEYS_ADVICE}.`,
  );
}

/** Adds a new KEK to a file keyring and returns the new keyring; the new key becomes active. */
export async function addKek(keyring: Keyring, now: Date): Promise<Keyring> {
  if (keyring.source !== 'file' || keyring.path === undefined) {
    throw new CountersignError(
      'INVALID_INPUT',
      'keys come from configuration (COUNTERSIGN_KEYS): append a new id:key there, restart, then run `countersign keys rewrap`',
    );
  }
  const path = keyring.path;
  return withKeyringLock(path, () => {
    const file = readKeyringFile(path);
    const id = newKekId(now, file.keks.map((k) => k.id));
    file.keks.push({ id, key: randomBytes(32).toString('base64'), created_at: now.toISOString() });
    writeKeyringFile(path, file, false);
    const written = parseKeyringFile(path);
    if (written.keks.at(-1)?.id !== id) {
      throw new CountersignError('KEY_UNAVAILABLE', `the new key-encryption key ${id} is not in ${path} after writing it: was the keyring changed by hand meanwhile?`);
    }
    return written;
  });
}

/**
 * The keyring as it is now: a file keyring is read again, since `countersign keys rotate` in
 * another process may have added a KEK since this one was loaded (KEY-01: rotation is online).
 * A keyring from configuration changes only with the configuration, so it is returned as is.
 */
export function reloadKeyring(keyring: Keyring): Keyring {
  return keyring.source === 'file' && keyring.path !== undefined ? parseKeyringFile(keyring.path) : keyring;
}

/** Removes a KEK that no data key uses any more (the caller checks that). */
export async function removeKek(keyring: Keyring, id: string): Promise<Keyring> {
  if (keyring.source !== 'file' || keyring.path === undefined) {
    throw new CountersignError('INVALID_INPUT', 'keys come from configuration: remove the key from COUNTERSIGN_KEYS instead');
  }
  const path = keyring.path;
  return withKeyringLock(path, () => {
    const file = readKeyringFile(path);
    if (file.keks.length <= 1) throw new CountersignError('INVALID_INPUT', 'the last key-encryption key cannot be retired');
    if (file.keks.at(-1)?.id === id) throw new CountersignError('INVALID_INPUT', `key ${id} is the active key and cannot be retired`);
    const kept = file.keks.filter((k) => k.id !== id);
    if (kept.length === file.keks.length) throw new CountersignError('NOT_FOUND', `key ${id} not found in the keyring`);
    file.keks = kept;
    writeKeyringFile(path, file, false);
    const written = parseKeyringFile(path);
    if (written.keks.some((k) => k.id === id) || written.keks.length !== kept.length) {
      throw new CountersignError('KEY_UNAVAILABLE', `${path} does not hold what was written when retiring ${id}: was the keyring changed by hand meanwhile?`);
    }
    return written;
  });
}

/**
 * Runs a read-modify-write of keys.json holding `<keys.json>.lock` (created with 'wx', so only
 * one process holds it; removed when done). Without it two `keys rotate` at once would each add
 * a KEK to what they read, and the later rename would drop the other's key. Waits up to
 * KEYRING_LOCK_WAIT_MS for another holder, then fails naming the lock file.
 */
async function withKeyringLock<T>(path: string, work: () => T): Promise<T> {
  const lock = `${path}${KEYRING_LOCK_SUFFIX}`;
  const deadline = Date.now() + KEYRING_LOCK_WAIT_MS;
  let fd: number | undefined;
  while (fd === undefined) {
    try {
      fd = openSync(lock, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (Date.now() >= deadline) {
        throw new CountersignError(
          'CONFLICT',
          `the keyring is locked by another \`countersign keys\` command (lock file ${lock}); if none is running (a crashed command), remove ${lock} and try again`,
        );
      }
      await sleep(25 + Math.floor(Math.random() * 50));
    }
  }
  try {
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    return work();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** `kek-<yyyymmdd>-<8 hex>`: random, so keys added at once by two processes never share an id. */
function newKekId(now: Date, taken: string[]): string {
  const day = now.toISOString().slice(0, 10).replaceAll('-', '');
  let id: string;
  do id = `kek-${day}-${randomBytes(4).toString('hex')}`;
  while (taken.includes(id));
  return id;
}

function readKeyringFile(path: string): KeyringFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new CountersignError('KEY_UNAVAILABLE', `the keyring ${path} cannot be read`, { cause: error });
  }
  const file = parsed as Partial<KeyringFile>;
  if (file.version !== 1 || !Array.isArray(file.keks) || typeof file.audit_key !== 'string') {
    throw new CountersignError('KEY_UNAVAILABLE', `the keyring ${path} is not a Countersign keyring`);
  }
  return file as KeyringFile;
}

function parseKeyringFile(path: string): Keyring {
  const file = readKeyringFile(path);
  const keks = file.keks.map((k) => ({ id: k.id, key: Buffer.from(k.key, 'base64') }));
  const auditKey = Buffer.from(file.audit_key, 'base64');
  if (keks.length === 0 || keks.some((k) => k.key.length !== 32) || auditKey.length !== 32) {
    throw new CountersignError('KEY_UNAVAILABLE', `the keyring ${path} holds a key that is not 32 bytes`);
  }
  return { keks, auditKey, source: 'file', path };
}

function writeKeyringFile(path: string, file: KeyringFile, exclusive: boolean): void {
  const text = `${JSON.stringify(file, null, 2)}\n`;
  if (exclusive) {
    // 'wx': never overwrite a keyring another process created a moment ago.
    try {
      writeFileSync(path, text, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    return;
  }
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

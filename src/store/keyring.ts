import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CountersignError } from '../core/errors.js';

/**
 * Key-encryption keys (KEKs) and the audit HMAC key. They come from configuration
 * (`COUNTERSIGN_KEYS`, `COUNTERSIGN_AUDIT_KEY`) or, by default, from `keys.json` in the data
 * directory, generated on first start with mode 0600. KEKs never touch the database: they wrap
 * the data keys that are stored there (secret-box.ts), so a database dump alone opens nothing.
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

export function activeKek(keyring: Keyring): Kek {
  const kek = keyring.keks.at(-1);
  if (kek === undefined) throw new CountersignError('KEY_UNAVAILABLE', 'the keyring holds no key-encryption key');
  return kek;
}

export function loadKeyring(options: {
  dataDir: string;
  keys: readonly Kek[] | undefined;
  auditKey: Buffer | undefined;
  now: Date;
}): Keyring {
  if (options.keys !== undefined && options.auditKey !== undefined) {
    return { keks: options.keys, auditKey: options.auditKey, source: 'config', path: undefined };
  }
  const path = join(options.dataDir, KEYRING_FILE);
  if (!existsSync(path)) {
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

/** Adds a new KEK to a file keyring and returns the new keyring; the new key becomes active. */
export function addKek(keyring: Keyring, now: Date): Keyring {
  if (keyring.source !== 'file' || keyring.path === undefined) {
    throw new CountersignError(
      'INVALID_INPUT',
      'keys come from configuration (COUNTERSIGN_KEYS): append a new id:key there, restart, then run `countersign keys rewrap`',
    );
  }
  const file = readKeyringFile(keyring.path);
  file.keks.push({ id: newKekId(now, file.keks.map((k) => k.id)), key: randomBytes(32).toString('base64'), created_at: now.toISOString() });
  writeKeyringFile(keyring.path, file, false);
  return parseKeyringFile(keyring.path);
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
export function removeKek(keyring: Keyring, id: string): Keyring {
  if (keyring.source !== 'file' || keyring.path === undefined) {
    throw new CountersignError('INVALID_INPUT', 'keys come from configuration: remove the key from COUNTERSIGN_KEYS instead');
  }
  const file = readKeyringFile(keyring.path);
  if (file.keks.length <= 1) throw new CountersignError('INVALID_INPUT', 'the last key-encryption key cannot be retired');
  if (file.keks.at(-1)?.id === id) throw new CountersignError('INVALID_INPUT', `key ${id} is the active key and cannot be retired`);
  const kept = file.keks.filter((k) => k.id !== id);
  if (kept.length === file.keks.length) throw new CountersignError('NOT_FOUND', `key ${id} not found in the keyring`);
  file.keks = kept;
  writeKeyringFile(keyring.path, file, false);
  return parseKeyringFile(keyring.path);
}

function newKekId(now: Date, taken: string[]): string {
  const base = `kek-${now.toISOString().slice(0, 10).replaceAll('-', '')}`;
  let id = base;
  for (let n = 2; taken.includes(id); n++) id = `${base}-${n}`;
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

import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { CountersignError } from '../core/errors.js';
import { activeKek, reloadKeyring, type Keyring } from './keyring.js';
import type { Database } from './schema.js';

/**
 * Envelope encryption of seeds (SECURITY.md OTP-10, KEY-01): each seed is sealed with
 * AES-256-GCM under a data key (DEK); DEKs are stored in `data_keys`, wrapped by a
 * key-encryption key (KEK) from the keyring, which never enters the database. Each sealed value
 * is bound to its row by the additional authenticated data (the method id), so a sealed seed
 * copied onto another row does not open.
 */
export interface SecretBox {
  seal(plaintext: Uint8Array, aad: string): Promise<{ sealed: string; keyId: string }>;
  open(sealed: string, keyId: string, aad: string): Promise<Buffer>;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

export function encrypt(key: Buffer, plaintext: Uint8Array, aad: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64');
}

export function decrypt(key: Buffer, sealed: string, aad: string): Buffer {
  const bytes = Buffer.from(sealed, 'base64');
  if (bytes.length < IV_BYTES + TAG_BYTES) throw new CountersignError('KEY_UNAVAILABLE', 'a sealed value is truncated');
  const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
  } catch (error) {
    throw new CountersignError('KEY_UNAVAILABLE', 'a sealed value does not open: wrong key or altered data', { cause: error });
  }
}

/**
 * How long a secret box keeps sealing with the data key it last found active. `countersign keys
 * rotate` runs in another process; a running server starts sealing new seeds with the new data
 * key within this time, without a restart (KEY-01: "new writes use the new key_id").
 */
export const ACTIVE_DATA_KEY_RECHECK_MS = 10_000;

export function createSecretBox(db: Kysely<Database>, keyring: Keyring, clock: () => Date): SecretBox {
  const dataKeys = new Map<string, Buffer>();
  let ring = keyring;
  let active: { id: string; checkedAt: number } | undefined;

  async function unwrap(id: string): Promise<Buffer> {
    const cached = dataKeys.get(id);
    if (cached !== undefined) return cached;
    const row = await db.selectFrom('data_keys').selectAll().where('id', '=', id).executeTakeFirst();
    if (row === undefined) throw new CountersignError('KEY_UNAVAILABLE', `data key ${id} is missing from the store`);
    let kek = ring.keks.find((k) => k.id === row.kek_id);
    if (kek === undefined && ring.source === 'file') {
      // A KEK this process has not seen: added by a rotation in another process (the CLI).
      ring = reloadKeyring(ring);
      kek = ring.keks.find((k) => k.id === row.kek_id);
    }
    if (kek === undefined) {
      throw new CountersignError('KEY_UNAVAILABLE', `data key ${id} is wrapped by key-encryption key ${row.kek_id}, which is not in the keyring`);
    }
    const key = decrypt(kek.key, row.wrapped_key, id);
    dataKeys.set(id, key);
    return key;
  }

  async function activeDataKey(): Promise<string> {
    const now = clock().getTime();
    if (active !== undefined && now >= active.checkedAt && now - active.checkedAt < ACTIVE_DATA_KEY_RECHECK_MS) return active.id;
    const row = await db
      .selectFrom('data_keys')
      .select('id')
      .where('active', '=', 1)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .executeTakeFirst();
    const id = row?.id ?? (await createDataKey(db, ring, clock()));
    active = { id, checkedAt: now };
    return id;
  }

  return {
    async seal(plaintext, aad) {
      const keyId = await activeDataKey();
      return { sealed: encrypt(await unwrap(keyId), plaintext, aad), keyId };
    },
    async open(sealed, keyId, aad) {
      return decrypt(await unwrap(keyId), sealed, aad);
    },
  };
}

/** Creates a new data key wrapped by the active KEK and makes it the one new seals use. */
export async function createDataKey(db: Kysely<Database>, keyring: Keyring, now: Date): Promise<string> {
  const kek = activeKek(keyring);
  const id = `dek-${randomUUID()}`;
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('data_keys').set({ active: 0 }).where('active', '=', 1).execute();
    await trx
      .insertInto('data_keys')
      .values({ id, kek_id: kek.id, wrapped_key: encrypt(kek.key, randomBytes(32), id), active: 1, created_at: now.getTime() })
      .execute();
  });
  return id;
}

/**
 * Re-wraps every data key under the active KEK (KEY-01), so that older KEKs can be retired.
 * Seeds are untouched: they stay sealed by their data key. Returns how many keys were re-wrapped.
 */
export async function rewrapDataKeys(db: Kysely<Database>, keyring: Keyring): Promise<number> {
  const kek = activeKek(keyring);
  let ring = keyring;
  return db.transaction().execute(async (trx) => {
    // The first statement must write. On SQLite (WAL) a transaction that starts with a SELECT
    // holds a read snapshot, and its first write then fails at once with SQLITE_BUSY_SNAPSHOT if
    // another process (a server, a second `keys rotate`) committed in between — busy_timeout
    // does not help. Writing the audit head to itself takes the write lock first (waiting
    // busy_timeout for others), and on PostgreSQL locks that row, so rewraps run one at a time
    // and each reads the data keys as the previous one left them. (`... where 1 = 0` would
    // change no row and take no lock.)
    await trx.updateTable('audit_head').set((eb) => ({ seq: eb.ref('seq') })).where('id', '=', 1).execute();
    const rows = await trx.selectFrom('data_keys').selectAll().where('kek_id', '!=', kek.id).execute();
    for (const row of rows) {
      let old = ring.keks.find((k) => k.id === row.kek_id);
      if (old === undefined && ring.source === 'file') {
        // Wrapped by a KEK that a concurrent `keys rotate` in another process added after ours.
        ring = reloadKeyring(ring);
        old = ring.keks.find((k) => k.id === row.kek_id);
      }
      if (old === undefined) {
        throw new CountersignError('KEY_UNAVAILABLE', `data key ${row.id} is wrapped by ${row.kek_id}, which is not in the keyring`);
      }
      const key = decrypt(old.key, row.wrapped_key, row.id);
      await trx.updateTable('data_keys').set({ kek_id: kek.id, wrapped_key: encrypt(kek.key, key, row.id) }).where('id', '=', row.id).execute();
    }
    return rows.length;
  });
}

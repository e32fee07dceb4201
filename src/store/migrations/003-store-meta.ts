import type { Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/**
 * Facts about the store itself, by name. The first is `audit_key_check`: an HMAC of a fixed text
 * under the audit key, so a process started with another keyring is refused before it writes
 * (keyring.ts: bindKeyringToStore). It reveals nothing of the key.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('store_meta')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('store_meta').ifExists().execute();
}

import type { Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/**
 * Push approval: activation codes (single use, 10 minutes, stored as hashes), the activated
 * authenticators (only their public keys), and on each push challenge the number the sign-in
 * screen shows and the device it went to.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('push_activations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('code_hash', 'text', (c) => c.notNull().unique())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    // The authenticator also gets a TOTP secret, for codes when it is offline.
    .addColumn('with_totp', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('push_devices')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('channel', 'text', (c) => c.notNull())
    // The channel's address of the device: a Web Push subscription (JSON), an FCM or APNs token.
    .addColumn('target', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_seen_at', 'bigint')
    .execute();
  await db.schema.createIndex('push_devices_user').on('push_devices').columns(['user_id']).execute();

  await db.schema.alterTable('challenges').addColumn('number', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('challenges').dropColumn('number').execute();
  await db.schema.dropTable('push_devices').execute();
  await db.schema.dropTable('push_activations').execute();
}

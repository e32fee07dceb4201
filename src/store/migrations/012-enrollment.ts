import type { Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/**
 * Registration (issue 5 item 1): enrollment links — single use, expiring, the token stored only
 * as its SHA-256 — and the registration campaign's snoozes (a user who said "not now" is not
 * nudged again until `snoozed_until`).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('enrollment_links')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    // The method types the link may register, comma-separated; read whole, never queried into.
    .addColumn('methods', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    // When the first method was registered through the link (the link then has 15 minutes left at most).
    .addColumn('first_method_at', 'bigint')
    .addColumn('used_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema.createIndex('enrollment_links_user').on('enrollment_links').columns(['user_id', 'expires_at']).execute();
  await db.schema.createIndex('enrollment_links_tenant').on('enrollment_links').columns(['tenant_id', 'created_at']).execute();
  // A push activation started through an enrollment link names it: a link has at most a few open
  // activation URLs, and the device that activates counts as a method registered through the link.
  await db.schema.alterTable('push_activations').addColumn('enrollment_link_id', 'text').execute();
  await db.schema.createIndex('push_activations_enrollment_link').on('push_activations').columns(['enrollment_link_id', 'expires_at']).execute();

  await db.schema
    .createTable('registration_snoozes')
    .addColumn('user_id', 'text', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('snoozed_until', 'bigint', (c) => c.notNull())
    .addColumn('snoozes', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('registration_snoozes_tenant').on('registration_snoozes').columns(['tenant_id', 'snoozed_until']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('push_activations_enrollment_link').execute();
  await db.schema.alterTable('push_activations').dropColumn('enrollment_link_id').execute();
  await db.schema.dropTable('registration_snoozes').execute();
  await db.schema.dropTable('enrollment_links').execute();
}

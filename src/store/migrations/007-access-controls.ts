import type { Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/**
 * Access controls (Azure MFA service settings, MFA Server): one-time bypasses, remembered devices
 * (tokens stored as hashes), the last successes that MFA Server caching reuses, and app
 * passwords for legacy clients (hashes only). A challenge records when its remember token was
 * handed out, so it is handed out once.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('bypasses')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('granted_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('used_at', 'bigint')
    .addColumn('used_by', 'text')
    .addColumn('revoked_at', 'bigint')
    // When its expiry unused was recorded in the audit log (once).
    .addColumn('expired_at', 'bigint')
    .execute();
  await db.schema.createIndex('bypasses_user').on('bypasses').columns(['user_id', 'expires_at']).execute();
  await db.schema.createIndex('bypasses_tenant').on('bypasses').columns(['tenant_id', 'created_at']).execute();

  await db.schema
    .createTable('remember_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('application_id', 'text', (c) => c.notNull().references('applications.id').onDelete('cascade'))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('remember_tokens_user').on('remember_tokens').columns(['user_id']).execute();

  await db.schema
    .createTable('mfa_successes')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('application_id', 'text', (c) => c.notNull().references('applications.id').onDelete('cascade'))
    // The client IP of the success, or '' when the application gave none.
    .addColumn('ip', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('mfa_successes_pk', ['user_id', 'application_id', 'ip'])
    .execute();

  await db.schema
    .createTable('app_passwords')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addColumn('last_used_ip', 'text')
    .addUniqueConstraint('app_passwords_user_name', ['user_id', 'name'])
    .execute();

  await db.schema.alterTable('challenges').addColumn('remember_issued_at', 'bigint').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('challenges').dropColumn('remember_issued_at').execute();
  await db.schema.dropTable('app_passwords').execute();
  await db.schema.dropTable('mfa_successes').execute();
  await db.schema.dropTable('remember_tokens').execute();
  await db.schema.dropTable('bypasses').execute();
}

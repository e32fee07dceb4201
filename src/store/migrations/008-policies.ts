import type { Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/**
 * Conditional access policies and named locations (issue 5 item 9). A policy's conditions are
 * read and written whole (JSON, never queried into): a sign-in reads all policies of a tenant in
 * one query, in `position` order, and decides in core/policies.ts — only when the tenant's
 * `policy_count` (its enabled policies) is not 0.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('policies')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    // 1, 2, 3 … within the tenant: the order preauth consults them in.
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    // PolicyConditions as JSON (users, groups, applications, client_types, locations).
    .addColumn('conditions', 'text', (c) => c.notNull())
    // Azure's exclusion group: its members are never subject to the policy.
    .addColumn('exclude_group', 'text')
    // block | require_mfa | require_phishing_resistant | allow_without_mfa ("grant" is an SQL keyword).
    .addColumn('grant_control', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('policies_tenant_name', ['tenant_id', 'name'])
    .execute();
  await db.schema.createIndex('policies_tenant_position').on('policies').columns(['tenant_id', 'position']).execute();

  await db.schema
    .createTable('named_locations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    // Normalized CIDR ranges as a JSON list.
    .addColumn('ranges', 'text', (c) => c.notNull())
    // 1 = the location counts as `trusted` in policy conditions (with the tenant's trusted IPs).
    .addColumn('trusted', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('named_locations_tenant_name', ['tenant_id', 'name'])
    .execute();

  // The tenant's enabled policies, counted by flows/policies.ts in the transaction of each change:
  // a sign-in reads it with the user (no query of its own) and skips the policies when it is 0.
  await db.schema.alterTable('tenants').addColumn('policy_count', 'integer', (c) => c.notNull().defaultTo(0)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('tenants').dropColumn('policy_count').execute();
  await db.schema.dropTable('named_locations').execute();
  await db.schema.dropIndex('policies_tenant_position').execute();
  await db.schema.dropTable('policies').execute();
}

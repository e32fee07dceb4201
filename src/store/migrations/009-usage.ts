import type { Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/**
 * Usage and reports (issue 5 items 10, 11).
 *
 * - `sign_ins`: one compact row per sign-in decision, projected from the audit log after the fact
 *   (flows/sign-ins.ts explains why: the hot path writes nothing more). `seq` is the audit
 *   record's own sequence number, so the projection is idempotent and the report's cursor is
 *   stable. No foreign key to tenants: rows are copied from the audit log, which outlives them.
 * - `usage_days`: per tenant and UTC day, the number of enabled users (state enabled or
 *   enforced) last counted that day and the seat count then in force (a daily snapshot).
 * - `seat_states`: per tenant, whether enabled users are above the seat count now, so that the
 *   warning `usage.seats_exceeded` is recorded once per crossing (a compare-and-set on this row).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sign_ins')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    // Days since the Unix epoch (UTC): floor(at / 86 400 000).
    .addColumn('day', 'integer', (c) => c.notNull())
    .addColumn('user_id', 'text')
    .addColumn('username', 'text')
    .addColumn('application_id', 'text')
    // preauth | verify | challenge | app_password
    .addColumn('kind', 'text', (c) => c.notNull())
    // none | totp | oath | sms | voice | push | code | app_password
    .addColumn('method', 'text', (c) => c.notNull())
    // approved | denied | fraud
    .addColumn('result', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('ip', 'text')
    .addColumn('challenge_id', 'text')
    .execute();
  await db.schema.createIndex('sign_ins_tenant_seq').on('sign_ins').columns(['tenant_id', 'seq']).execute();
  await db.schema.createIndex('sign_ins_tenant_day').on('sign_ins').columns(['tenant_id', 'day', 'method', 'result']).execute();
  await db.schema.createIndex('sign_ins_tenant_user').on('sign_ins').columns(['tenant_id', 'username', 'seq']).execute();

  await db.schema
    .createTable('usage_days')
    .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('day', 'integer', (c) => c.notNull())
    .addColumn('enabled_users', 'integer', (c) => c.notNull())
    .addColumn('seats', 'integer')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('usage_days_pk', ['tenant_id', 'day'])
    .execute();

  await db.schema
    .createTable('seat_states')
    .addColumn('tenant_id', 'text', (c) => c.primaryKey().references('tenants.id').onDelete('cascade'))
    .addColumn('exceeded', 'integer', (c) => c.notNull())
    .addColumn('changed_at', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('seat_states').execute();
  await db.schema.dropTable('usage_days').execute();
  await db.schema.dropTable('sign_ins').execute();
  await db.deleteFrom('store_meta').where('name', '=', 'sign_ins_seq').execute();
}

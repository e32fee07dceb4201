import { sql, type Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/**
 * Administrator roles on admin keys (issue 5 item 13): `global_admin`, `authentication_admin`,
 * `reader`. Every key that exists already could do everything, so it becomes `global_admin`:
 * nobody loses access by upgrading. Application keys have no role (null).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('api_keys')
    .addColumn('role', 'text', (c) => c.check(sql`role in ('global_admin', 'authentication_admin', 'reader')`))
    .execute();
  await db.updateTable('api_keys').set({ role: 'global_admin' }).where('kind', '=', 'admin').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('api_keys').dropColumn('role').execute();
}

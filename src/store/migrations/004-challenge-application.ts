import type { Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/** A challenge belongs to the application that created it: no other application reads or answers it. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('challenges').addColumn('application_id', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('challenges').dropColumn('application_id').execute();
}

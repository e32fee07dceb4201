import type { Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/** Usage and reports: per-tenant daily usage counts and sign-in records (issue 5 items 10, 11). */
export async function up(db: Kysely<any>): Promise<void> {
  // PLACEHOLDER — filled in by the work on this item.
  await Promise.resolve(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  // PLACEHOLDER — the reverse of up.
  await Promise.resolve(db);
}

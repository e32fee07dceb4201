import type { Kysely } from 'kysely';

// Migrations take Kysely<any>: they are frozen in time and must not follow later schema types.
/* eslint-disable @typescript-eslint/no-explicit-any -- Kysely's documented migration signature */

/** Conditional access policies and named locations (issue 5 item 9). */
export async function up(db: Kysely<any>): Promise<void> {
  // PLACEHOLDER — filled in by the work on this item.
  await Promise.resolve(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  // PLACEHOLDER — the reverse of up.
  await Promise.resolve(db);
}

import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * Fixed-window rate limits kept in the store, so every node and every restart sees the same
 * counts (SPEC: "rate-limit windows live in the database"). Taking one is one atomic statement:
 * an insert of the window's first use, or an increment that only happens below the limit — so
 * however many requests race, at most `max` get through per window.
 */
export type Take = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export async function takeFromWindow(db: Kysely<Database>, key: string, max: number, windowMs: number, nowMs: number): Promise<Take> {
  const windowStart = nowMs - (nowMs % windowMs);
  const row = await db
    .insertInto('rate_windows')
    .values({ key, window_start: windowStart, count: 1 })
    .onConflict((oc) =>
      oc
        .columns(['key', 'window_start'])
        .doUpdateSet({ count: sql<number>`rate_windows.count + 1` })
        .where('rate_windows.count', '<', max),
    )
    .returning('count')
    .executeTakeFirst();
  if (row !== undefined) return { allowed: true };
  return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((windowStart + windowMs - nowMs) / 1000)) };
}

/** Drops windows that ended before `beforeMs` (called now and then; counts are never needed after their window). */
export async function purgeWindows(db: Kysely<Database>, beforeMs: number): Promise<void> {
  await db.deleteFrom('rate_windows').where('window_start', '<', beforeMs).execute();
}

import { sql, type Kysely, type UpdateQueryBuilder, type UpdateResult } from 'kysely';
import { preparedQuery } from './prepared-query.js';
import type { Database } from './schema.js';

/**
 * The failure counter per user (SECURITY.md OTP-06, RL-01; Azure's account lockout settings),
 * kept in the database so every request, session and node shares it.
 *
 * An attempt is reserved before the result of its code check is used: one UPDATE counts it as a
 * failure and, when the count reaches the threshold, sets the lockout — but only if the user is
 * not locked already. So however many requests race, at most `threshold` answers are given
 * between lockouts. A success clears the count (NIST 800-63B §5.2.2: SHOULD reset on success).
 */
export interface LockoutPolicy {
  readonly threshold: number;
  readonly resetMinutes: number;
  readonly lockoutMinutes: number;
}

export type Reservation = { reserved: true; user: { id: string; failed_count: number; locked_until: number | null }; lockedNow: boolean } | { reserved: false };

/**
 * `outcome: 'failure'` counts the attempt (and may lock); `outcome: 'success'` is for a code
 * already known to match: it clears the count in the same statement, saving a write on the
 * common path. If the success then does not happen (the step was consumed by a racing request),
 * the caller counts it with a second, 'failure' reservation in the same transaction.
 */
export async function reserveAttempt(
  db: Kysely<Database>,
  tenantId: string,
  username: string,
  policy: LockoutPolicy,
  nowMs: number,
  outcome: 'failure' | 'success' = 'failure',
): Promise<Reservation> {
  const result =
    outcome === 'success'
      ? await reserveSuccess(db, tenantId, username, nowMs)
      : await reserveFailure(db, tenantId, username, nowMs, nowMs - policy.resetMinutes * 60_000, policy.threshold, nowMs + policy.lockoutMinutes * 60_000);
  const row = result.rows[0];
  if (row === undefined) return { reserved: false };
  return { reserved: true, user: { id: row.id, failed_count: Number(row.failed_count), locked_until: row.locked_until === null ? null : Number(row.locked_until) }, lockedNow: row.locked_until !== null };
}

// Parameters are cast so PostgreSQL knows their type inside CASE (SQLite accepts the same).
const int = (value: number) => sql<number>`cast(${value} as bigint)`;

/** The user may answer now: not locked (or the lockout is over), and active (or the block is over). */
function mayAnswer(query: UpdateQueryBuilder<Database, 'users', 'users', UpdateResult>, nowMs: number) {
  return query
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', nowMs)]))
    .where((eb) => eb.or([eb('status', '=', 'active'), eb('blocked_until', '<=', nowMs)]));
}

const reserveFailure = preparedQuery((db, tenantId: string, username: string, nowMs: number, resetBefore: number, threshold: number, lockUntil: number) => {
  const fresh = sql<boolean>`(failed_since is null or failed_since <= ${int(resetBefore)})`;
  const count = sql<number>`(case when ${fresh} then 1 else failed_count + 1 end)`;
  const reachesThreshold = sql<boolean>`${count} >= ${int(threshold)}`;
  const update = db
    .updateTable('users')
    .set({
      // Reaching the threshold locks the user and starts a new count for after the lockout.
      failed_count: sql<number>`case when ${reachesThreshold} then 0 else ${count} end`,
      failed_since: sql<number | null>`case when ${reachesThreshold} then null when ${fresh} then ${int(nowMs)} else failed_since end`,
      locked_until: sql<number | null>`case when ${reachesThreshold} then ${int(lockUntil)} else null end`,
    })
    .where('tenant_id', '=', tenantId)
    .where('username', '=', username);
  return mayAnswer(update, nowMs).returning(['id', 'failed_count', 'locked_until']);
});

const reserveSuccess = preparedQuery((db, tenantId: string, username: string, nowMs: number) => {
  const update = db.updateTable('users').set({ failed_count: 0, failed_since: null, locked_until: null }).where('tenant_id', '=', tenantId).where('username', '=', username);
  return mayAnswer(update, nowMs).returning(['id', 'failed_count', 'locked_until']);
});

/**
 * Consumes an OTP counter or time step (SECURITY.md OTP-01, OTP-02): the replay check and the
 * update are this one statement, so of any number of concurrent submissions of one code exactly
 * one sees a row changed. Returns whether this call consumed it.
 */
export async function consumeOtpCounter(db: Kysely<Database>, methodId: string, counter: number, nowMs: number, owner?: { userId: string }): Promise<boolean> {
  // At sign-in the method must still be the user's and active at this very moment: a token
  // unassigned or a method removed while the code was being checked does not approve (BND-02).
  const result = owner === undefined ? await consumeCounter(db, methodId, counter, counter + 1, nowMs) : await consumeOwnedCounter(db, methodId, counter, counter + 1, nowMs, owner.userId);
  return result.numAffectedRows === 1n;
}

const consumeCounter = preparedQuery((db, methodId: string, counter: number, next: number, nowMs: number) =>
  db.updateTable('methods').set({ counter: next, last_used_at: nowMs }).where('id', '=', methodId).where('counter', '<=', counter),
);

const consumeOwnedCounter = preparedQuery((db, methodId: string, counter: number, next: number, nowMs: number, userId: string) =>
  db.updateTable('methods').set({ counter: next, last_used_at: nowMs }).where('id', '=', methodId).where('counter', '<=', counter).where('user_id', '=', userId).where('status', '=', 'active'),
);

/**
 * PostgreSQL only (SQLite has no data-modifying WITH): the verify path's common case — a code
 * that matched exactly one method — as one statement, atomic on its own, instead of a
 * transaction's four round trips. In order: lock the user if they may answer now (`for no key update`
 * waits for a racing attempt and re-checks the lockout and block on the row it then holds, as
 * `reserveAttempt` does), consume the step as `consumeOtpCounter` does, and only if that
 * happened clear the failure count. Returns the user's id when the code was consumed; otherwise
 * nothing at all was changed, and the caller goes on as if this had not been tried.
 */
export async function approveAtOnce(db: Kysely<Database>, tenantId: string, username: string, methodId: string, counter: number, nowMs: number): Promise<{ id: string } | undefined> {
  return (await approveStatement(db, tenantId, username, nowMs, methodId, counter, counter + 1)).rows[0];
}

const approveStatement = preparedQuery((db, tenantId: string, username: string, nowMs: number, methodId: string, counter: number, next: number) =>
  db
    .with('target', (qc) =>
      qc
        .selectFrom('users')
        .select('id')
        .where('tenant_id', '=', tenantId)
        .where('username', '=', username)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', nowMs)]))
        .where((eb) => eb.or([eb('status', '=', 'active'), eb('blocked_until', '<=', nowMs)]))
        .forNoKeyUpdate(),
    )
    .with('consumed', (qc) =>
      qc
        .updateTable('methods')
        .set({ counter: next, last_used_at: nowMs })
        .where('id', '=', methodId)
        .where('counter', '<=', counter)
        .where('status', '=', 'active')
        .where('user_id', '=', (eb) => eb.selectFrom('target').select('id'))
        .returning('user_id'),
    )
    .with('cleared', (qc) =>
      qc
        .updateTable('users')
        .set({ failed_count: 0, failed_since: null, locked_until: null })
        .where('id', '=', (eb) => eb.selectFrom('consumed').select('user_id'))
        .returning('id'),
    )
    .selectFrom('cleared')
    .select('id'),
);
